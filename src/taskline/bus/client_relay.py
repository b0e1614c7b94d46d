"""ClientRelay: personal messages, offline queues and client-id owners across processes.

A WebSocket client (``client_id``) is connected to one process (its *node*) at a time. With
several processes, the :class:`~taskline.realtime.manager.ConnectionManager` of each uses
this relay:

* **Presence** — key ``{prefix}:client:{client_id}`` holds the node id of the process holding
  the client's connection (time to live ``presence_ttl * 2/3``, refreshed every
  ``presence_ttl / 3`` while connected, deleted on disconnect only by its own node). A node
  that dies stops refreshing: its clients show connected nowhere within ``presence_ttl``.
* **Personal messages** — each node listens on ``{prefix}:client-node:{node}``. :meth:`send`
  publishes the frame to the client's node and waits (``ack_timeout``) for that node's answer
  on a reply list: ``delivered`` (a live connection took it) or ``queued`` (the client had
  just left: the node queued it). Only ``delivered`` makes :meth:`send` return True. A node
  that took the frame but did not answer in time: False (the frame was delivered or queued
  there; never both, never lost).
* **Offline queues** — a client connected nowhere gets its frames in the list
  ``{prefix}:client-queue:{client_id}`` (``queue_size`` newest; the dropped ones counted in
  ``{prefix}:client-dropped:{client_id}``), kept ``queue_ttl`` seconds after the last push,
  emptied once by whichever node the client connects to next (:meth:`take`). A queue that
  expired is remembered (``{prefix}:client-queued:{client_id}``, twice as long) so that the
  client is told (``expired``) rather than getting nothing silently.
* **Owners** — key ``{prefix}:client-owner:{client_id}`` holds the principal that first
  connected with the id (:meth:`claim_owner`), kept ``owner_ttl`` seconds after last use.

Redis failures surface as :class:`~taskline.domain.errors.StorageError` (``from`` the driver's
error); the manager then does what one process does alone (its own queues and owners). This
node's subscription is kept by :class:`~taskline.bus.redis_subscription.Subscription` (it
subscribes again, with backoff, after a failure); a publish on a connection the pool kept
from before an outage is tried once more on a fresh one.
"""

import asyncio
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
from taskline.domain.errors import StorageError
from taskline.domain.ids import new_id

__all__ = ["ClientRelay", "Connected", "DeliverHere", "Queued"]

logger = logging.getLogger(__name__)

#: Called with (client_id, frame) for a personal message another node sent here; True if a
#: live connection took it (False: the relay queues it).
DeliverHere = Callable[[str, str], Awaitable[bool]]
#: The client ids connected to this node now.
Connected = Callable[[], Sequence[str]]
#: What a returning client gets: its frames (oldest first), how many were dropped, expired.
Queued = tuple[list[str], int, bool]

# Extend the presence keys still ours; take back those that vanished (others': left alone).
_REFRESH = """
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
end
return 0
"""

# Delete the presence key only when it is this node's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: queue, dropped, marker; ARGV: frame, size, ttl ms. Returns the queue's length.
_PUSH = """
redis.call('RPUSH', KEYS[1], ARGV[1])
local size = tonumber(ARGV[2])
local over = redis.call('LLEN', KEYS[1]) - size
if over > 0 then
  redis.call('LTRIM', KEYS[1], over, -1)
  redis.call('INCRBY', KEYS[2], over)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[3], '1', 'PX', 2 * tonumber(ARGV[3]))
return redis.call('LLEN', KEYS[1])
"""

# KEYS: queue, dropped, marker. Returns {frames, dropped, had a queue}; all three removed.
_TAKE = """
local frames = redis.call('LRANGE', KEYS[1], 0, -1)
local dropped = tonumber(redis.call('GET', KEYS[2]) or '0')
local marked = redis.call('EXISTS', KEYS[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {frames, dropped, marked}
"""

# Take the id for ARGV[1] (or extend it when already its owner's); 1 if so, 0 if another's.
_CLAIM_OWNER = """
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class ClientRelay:
    """Presence keys, per-node message channels, shared queues and owners in one Redis.

    Args:
        url: Redis URL (``redis://127.0.0.1:6379/0``).
        node: this process's id, unique per deployment.
        presence_ttl: seconds within which a crashed node's clients show connected nowhere.
        queue_size: personal messages kept per client connected nowhere (oldest dropped).
        queue_ttl: seconds such a queue is kept after its last message.
        owner_ttl: seconds a client id stays its owner's after last use (None: ``queue_ttl``).
        prefix: key and channel prefix shared by the processes of one deployment.
        timeout: seconds allowed to connect and for each command.
        ack_timeout: seconds :meth:`send` waits for the client's node to answer (at most
            four fifths of ``timeout``).
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        presence_ttl: float = 30.0,
        queue_size: int = 100,
        queue_ttl: float = 86_400.0,
        owner_ttl: float | None = None,
        prefix: str = "taskline",
        timeout: float = 5.0,
        ack_timeout: float = 4.0,
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
        self.owner_ttl = owner_ttl if owner_ttl is not None else queue_ttl
        self.prefix = prefix
        self._timeout = timeout
        # a blocking read must end before the socket's own timeout
        self._ack_timeout = min(ack_timeout, timeout * 0.8)
        self._client: Redis | None = None
        self._subscription: Subscription | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self._deliver: DeliverHere | None = None
        self._connected: Connected | None = None

    def __repr__(self) -> str:
        return f"<ClientRelay node={self.node!r} prefix={self.prefix!r}>"

    @property
    def connected(self) -> bool:
        """True while the listener holds this node's subscription (False while it reconnects)."""
        return self._subscription is not None and self._subscription.connected

    @property
    def channel(self) -> str:
        return self._channel(self.node)

    def _channel(self, node: str) -> str:
        return f"{self.prefix}:client-node:{node}"

    def _presence(self, client_id: str) -> str:
        return f"{self.prefix}:client:{client_id}"

    def _queue_keys(self, client_id: str) -> list[str]:
        return [
            f"{self.prefix}:client-queue:{client_id}",
            f"{self.prefix}:client-dropped:{client_id}",
            f"{self.prefix}:client-queued:{client_id}",
        ]

    def _owner(self, client_id: str) -> str:
        return f"{self.prefix}:client-owner:{client_id}"

    @property
    def _presence_ms(self) -> int:
        return max(1, int(self.presence_ttl * 2000 / 3))

    @property
    def _redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError("ClientRelay: not started")
        return self._client

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, deliver: DeliverHere, connected: Connected) -> None:
        """Subscribe to this node's channel, then listen (``deliver`` gets the messages other
        nodes send here) and refresh the presence of the ``connected`` clients.

        Raises:
            StorageError: Redis cannot be reached (the relay stays unstarted).
        """
        if self._client is not None:
            raise RuntimeError("ClientRelay: already started")
        self._deliver, self._connected = deliver, connected
        subscription = await subscribe(
            self.url,
            self.channel,
            self._handle,
            client_name=f"taskline-clients:{self.node}",
            listener_name=f"taskline-client-relay:{self.node}",
            timeout=self._timeout,
        )
        self._client, self._subscription = subscription.client, subscription
        self._presence_task = asyncio.get_running_loop().create_task(
            self._keep_present(), name=f"taskline-client-presence:{self.node}"
        )

    async def close(self) -> None:
        """Stop listening and refreshing, close the connections. Closing twice is harmless."""
        presence, self._presence_task = self._presence_task, None
        if presence is not None:
            presence.cancel()
            await asyncio.wait({presence})
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # --- presence and owners ----------------------------------------------------------------

    async def online(self, client_id: str) -> None:
        """Record this node as the client's."""
        with redis_errors(f"record client {client_id}'s presence"):
            await self._redis.set(self._presence(client_id), self.node, px=self._presence_ms)

    async def offline(self, client_id: str) -> None:
        """Forget the client's presence here (unless another node holds it now) and start the
        clock of its id's owner."""
        with redis_errors(f"forget client {client_id}'s presence"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.eval(_RELEASE, 1, self._presence(client_id), self.node)
                pipe.pexpire(self._owner(client_id), int(self.owner_ttl * 1000))
                await pipe.execute()

    async def refresh(self, client_ids: Sequence[str]) -> None:
        """Extend this node's presence keys of ``client_ids`` and their owners' keys."""
        if not client_ids:
            return
        keys = [self._presence(c) for c in client_ids]
        with redis_errors(f"refresh the presence of {len(keys)} client(s)"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.eval(_REFRESH, len(keys), *keys, self.node, self._presence_ms)
                for client_id in client_ids:
                    pipe.pexpire(self._owner(client_id), int(self.owner_ttl * 1000))
                await pipe.execute()

    async def claim_owner(self, client_id: str, owner: str) -> bool:
        """True (and the id is ``owner``'s from now) unless another owner holds it."""
        ms = max(1, int(self.owner_ttl * 1000))
        with redis_errors(f"record client {client_id}'s owner"):
            taken = await self._redis.eval(_CLAIM_OWNER, 1, self._owner(client_id), owner, ms)
        return bool(taken)

    # --- messages and queues ----------------------------------------------------------------

    async def send(self, client_id: str, frame: str) -> bool:
        """Send a personal message frame to the client's node; queue it when the client is
        connected nowhere. True only if a live connection took it."""
        with redis_errors(f"look up client {client_id}'s node"):
            node = as_text(await self._redis.get(self._presence(client_id)))
        if node is not None and node != self.node:
            reply = f"{self.prefix}:client-ack:{new_id('ack')}"
            payload = orjson.dumps({"client_id": client_id, "frame": frame, "reply": reply})
            action = f"send a personal message to node {node}"
            if await publish(self._redis, self._channel(node), payload, action=action):
                with redis_errors(action):
                    answer = await self._redis.blpop([reply], timeout=self._ack_timeout)
                if answer is None:
                    logger.warning(
                        "node %s took a message for client %s but did not answer in %g s",
                        node,
                        client_id,
                        self._ack_timeout,
                    )
                    return False
                return as_text(answer[1]) == "delivered"
        await self.enqueue(client_id, frame)
        return False

    async def enqueue(self, client_id: str, frame: str) -> int:
        """Keep ``frame`` for the client until it connects; return how many wait now."""
        keys = self._queue_keys(client_id)
        ms = max(1, int(self.queue_ttl * 1000))
        with redis_errors(f"queue a personal message for client {client_id}"):
            depth = await self._redis.eval(_PUSH, len(keys), *keys, frame, self.queue_size, ms)
        return int(depth)

    async def depth(self, client_id: str) -> int:
        """How many messages wait for the client in its shared queue."""
        with redis_errors(f"read client {client_id}'s queue"):
            return int(await self._redis.llen(self._queue_keys(client_id)[0]))

    async def take(self, client_id: str) -> Queued:
        """The messages waiting for the client (oldest first), how many were dropped, and
        whether its queue expired unread; all removed."""
        keys = self._queue_keys(client_id)
        with redis_errors(f"read client {client_id}'s queued messages"):
            frames, dropped, marked = await self._redis.eval(_TAKE, len(keys), *keys)
        texts = [t for t in (as_text(f) for f in frames) if t is not None]
        return texts, int(dropped), bool(marked) and not texts

    # --- listener and presence loop ---------------------------------------------------------

    async def _handle(self, data: Any) -> None:
        """Hand a message to the manager (or queue it), then answer its sender."""
        assert self._deliver is not None
        try:
            message = orjson.loads(data)
            client_id, frame = str(message["client_id"]), str(message["frame"])
            reply = str(message["reply"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("Redis channel %r: not a personal message: %.200r", self.channel, data)
            return
        try:
            delivered = await self._deliver(client_id, frame)
            if not delivered:
                await self.enqueue(client_id, frame)
            with redis_errors(f"answer for client {client_id}'s message"):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.rpush(reply, "delivered" if delivered else "queued")
                    pipe.pexpire(reply, max(1, int(self._timeout * 1000)))
                    await pipe.execute()
        except StorageError as exc:
            logger.warning("personal message for client %s: %s", client_id, exc)

    async def _keep_present(self) -> None:
        """Refresh the connected clients' presence every third of ``presence_ttl``."""
        assert self._connected is not None
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            try:
                await self.refresh(list(self._connected()))
            except StorageError as exc:
                logger.warning("client presence not kept in Redis: %s", exc)
