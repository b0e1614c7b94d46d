"""AgentRelay: agents' commands and presence across server processes, through Redis.

An agent keeps one WebSocket, to one process (its *node*). With several processes, the
:class:`~taskline.realtime.agents.AgentHub` of each uses this relay:

* **Presence** — key ``{prefix}:agent:{agent_id}`` holds the node id of the process holding
  the agent's connection, with a time to live of ``presence_ttl * 2/3`` that the node
  refreshes every ``presence_ttl / 3`` (:meth:`refresh`). A node that dies (``kill -9``)
  stops refreshing: its keys expire, and the sweep (:meth:`sweep`, one process per turn,
  over the set ``{prefix}:agents`` of agents recorded present) returns those agents, which
  the hub marks offline — within ``presence_ttl`` of the crash.
* **Commands** — each node subscribes to its own channel ``{prefix}:node:{node}``.
  :meth:`send` publishes a command frame to the channel of the agent's node; that node's
  listener hands it to the hub, which sends it on the socket. When the agent is connected
  nowhere (no key, or its node no longer listens), the frame goes to the agent's shared
  queue, the list ``{prefix}:agent-queue:{agent_id}`` (``queue_size`` newest, kept
  ``queue_ttl`` seconds after the last push), which whichever node the agent connects to next
  empties (:meth:`take_queue`).
* **Replacement** — a node that takes over an agent from another (:meth:`claim` returns the
  previous node) tells that node to close its older connection (:meth:`replace`).

Redis failures surface as :class:`~taskline.domain.errors.StorageError` (``from`` the driver's
error); the hub then falls back to what one process does alone. A publish (a command, a
replacement) on a connection the pool kept from before an outage is tried once more on a
fresh one. Pub/sub is fire-and-forget: a command published while its node is reconnecting to
Redis (with backoff, :class:`~taskline.bus.redis_subscription.Subscription`) is lost for that
node (``send`` reports it delivered when a subscriber took it).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from taskline.bus.redis_subscription import (
    Subscription,
    as_text,
    publish,
    redis_errors,
    subscribe,
)

__all__ = ["AgentRelay", "Deliver", "Drop"]

logger = logging.getLogger(__name__)

#: Called with (agent_id, frame text) for a command a node sent here.
Deliver = Callable[[str, str], Awaitable[None]]
#: Called with the agent id whose connection here another node took over.
Drop = Callable[[str], Awaitable[None]]

# Extend the key when it is still ours; take it back when it vanished; report it otherwise.
_REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

# Forget (and return) the agents recorded present whose key expired: connected nowhere now.
_SWEEP = """
local gone = {}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. agent) == 0 then
    redis.call('SREM', KEYS[1], agent)
    table.insert(gone, agent)
  end
end
return gone
"""

# Delete the key when it is ours; return who holds it now (nil: nobody).
_RELEASE = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return false
end
return owner
"""


class AgentRelay:
    """Presence keys, per-node command channels and shared queues in one Redis.

    Args:
        url: Redis URL (``redis://127.0.0.1:6379/0``).
        node: this process's id, unique per deployment.
        presence_ttl: seconds within which a crashed node's agents show offline.
        queue_size: commands kept per agent connected nowhere (oldest dropped).
        queue_ttl: seconds such a queue is kept after its last command.
        prefix: key and channel prefix shared by the processes of one deployment.
        timeout: seconds allowed to connect and for each command.
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        presence_ttl: float = 30.0,
        queue_size: int = 100,
        queue_ttl: float = 86_400.0,
        prefix: str = "taskline",
        timeout: float = 5.0,
    ) -> None:
        if not node:
            raise ValueError("node must be a non-empty string")
        if presence_ttl <= 0 or queue_ttl <= 0 or queue_size < 1:
            raise ValueError("presence_ttl and queue_ttl must be positive, queue_size >= 1")
        self.url = url
        self.node = node
        self.presence_ttl = presence_ttl
        self.queue_size = queue_size
        self.queue_ttl = queue_ttl
        self.prefix = prefix
        self._timeout = timeout
        self._client: Redis | None = None
        self._subscription: Subscription | None = None
        self._deliver: Deliver | None = None
        self._drop: Drop | None = None

    def __repr__(self) -> str:
        return f"<AgentRelay node={self.node!r} prefix={self.prefix!r}>"

    @property
    def connected(self) -> bool:
        """True while the listener holds this node's subscription (False while it reconnects)."""
        return self._subscription is not None and self._subscription.connected

    @property
    def refresh_interval(self) -> float:
        """Seconds between refreshes of this node's keys (and sweeps)."""
        return self.presence_ttl / 3

    @property
    def channel(self) -> str:
        return self._channel(self.node)

    def _channel(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    def _key(self, agent_id: str) -> str:
        return f"{self.prefix}:agent:{agent_id}"

    @property
    def _present(self) -> str:
        return f"{self.prefix}:agents"

    def _queue(self, agent_id: str) -> str:
        return f"{self.prefix}:agent-queue:{agent_id}"

    @property
    def _key_ms(self) -> int:
        return max(1, int(self.presence_ttl * 2000 / 3))

    @property
    def _redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError("AgentRelay: not started")
        return self._client

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, deliver: Deliver, drop: Drop) -> None:
        """Subscribe to this node's channel, then listen: ``deliver`` gets the commands other
        nodes send here, ``drop`` the agents another node took over.

        Raises:
            StorageError: Redis cannot be reached (the relay stays unstarted).
        """
        if self._client is not None:
            raise RuntimeError("AgentRelay: already started")
        self._deliver, self._drop = deliver, drop
        subscription = await subscribe(
            self.url,
            self.channel,
            self._receive,
            client_name=f"taskline-agents:{self.node}",
            listener_name=f"taskline-agent-relay:{self.node}",
            timeout=self._timeout,
        )
        self._client, self._subscription = subscription.client, subscription

    async def close(self) -> None:
        """Stop listening and close the connections. Closing twice is harmless."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # --- presence ---------------------------------------------------------------------------

    async def claim(self, agent_id: str) -> str | None:
        """Record this node as the agent's; return the node that had it before (None: none,
        or this one)."""
        with redis_errors(f"record agent {agent_id}'s presence"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key(agent_id), self.node, px=self._key_ms, get=True)
                pipe.sadd(self._present, agent_id)
                previous, _ = await pipe.execute()
        owner = as_text(previous)
        return None if owner in (None, self.node) else owner

    async def release(self, agent_id: str) -> str | None:
        """Forget the agent's presence here; return the node holding it now (None: nobody,
        so the agent is offline)."""
        with redis_errors(f"forget agent {agent_id}'s presence"):
            owner = await self._redis.eval(_RELEASE, 1, self._key(agent_id), self.node)
        return as_text(owner)

    async def refresh(self, agent_ids: Sequence[str]) -> list[str]:
        """Extend this node's keys of ``agent_ids``; return those another node holds now."""
        if not agent_ids:
            return []
        keys = [self._key(a) for a in agent_ids]
        with redis_errors(f"refresh the presence of {len(keys)} agent(s)"):
            lost = await self._redis.eval(_REFRESH, len(keys), *keys, self.node, self._key_ms)
        return [agent_ids[int(i) - 1] for i in lost]

    async def nodes(self, agent_ids: Sequence[str]) -> dict[str, str | None]:
        """The node holding each agent (None: connected nowhere)."""
        if not agent_ids:
            return {}
        with redis_errors(f"read the presence of {len(agent_ids)} agent(s)"):
            values = await self._redis.mget([self._key(a) for a in agent_ids])
        return {a: as_text(v) for a, v in zip(agent_ids, values, strict=True)}

    async def sweep(self) -> list[str]:
        """On this node's turn (one node per quarter of the TTL), the agents recorded present
        whose key expired — connected nowhere now — forgotten as it returns them; else []."""
        ms = max(1, int(self.presence_ttl * 250))
        with redis_errors("sweep agents' presence"):
            if not await self._redis.set(f"{self.prefix}:agent-sweep", self.node, px=ms, nx=True):
                return []
            gone = await self._redis.eval(_SWEEP, 1, self._present, f"{self.prefix}:agent:")
        return [t for t in (as_text(a) for a in gone) if t is not None]

    # --- commands ---------------------------------------------------------------------------

    async def send(self, agent_id: str, text: str) -> bool:
        """Send a command frame to the agent's node; queue it when the agent is connected
        nowhere. True if a node took it (it sends it on, or queues it if the agent just left)."""
        node = (await self.nodes([agent_id]))[agent_id]
        if node is not None and node != self.node:
            payload = orjson.dumps({"type": "command", "agent_id": agent_id, "frame": text})
            action = f"send a command to node {node}"
            if await publish(self._redis, self._channel(node), payload, action=action):
                return True
        await self.enqueue(agent_id, text)
        return False

    async def replace(self, node: str, agent_id: str) -> None:
        """Tell ``node`` that the agent connected elsewhere (it closes its older connection)."""
        payload = orjson.dumps({"type": "replaced", "agent_id": agent_id, "by": self.node})
        action = f"tell node {node} that agent {agent_id} moved"
        await publish(self._redis, self._channel(node), payload, action=action)

    async def enqueue(self, agent_id: str, text: str) -> None:
        """Keep ``text`` for the agent until it connects (newest ``queue_size``)."""
        key = self._queue(agent_id)
        with redis_errors(f"queue a command for agent {agent_id}"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, text)
                pipe.ltrim(key, -self.queue_size, -1)
                pipe.pexpire(key, int(self.queue_ttl * 1000))
                await pipe.execute()

    async def take_queue(self, agent_id: str) -> list[str]:
        """The commands waiting for the agent, oldest first, removed from the queue."""
        key = self._queue(agent_id)
        with redis_errors(f"read agent {agent_id}'s queued commands"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrange(key, 0, -1)
                pipe.delete(key)
                frames, _ = await pipe.execute()
        return [t for t in (as_text(f) for f in frames) if t is not None]

    # --- listener ---------------------------------------------------------------------------

    async def _receive(self, raw: Any) -> None:
        try:
            payload = orjson.loads(raw)
            kind, agent_id = payload["type"], payload["agent_id"]
            if not isinstance(agent_id, str):
                raise TypeError("agent_id must be a string")
            if kind == "command":
                frame = payload["frame"]
                if not isinstance(frame, str):
                    raise TypeError("frame must be a string")
                assert self._deliver is not None
                await self._deliver(agent_id, frame)
            elif kind == "replaced":
                assert self._drop is not None
                await self._drop(agent_id)
            else:
                raise ValueError(f"unknown message type {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("Redis channel %r: ignoring a malformed message: %s", self.channel, exc)
        except Exception:
            logger.exception("Redis channel %r: could not hand on a message", self.channel)
