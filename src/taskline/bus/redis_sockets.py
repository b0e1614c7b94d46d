"""RedisSockets: open WebSockets counted across server processes, in Redis
(:class:`~taskline.domain.shared_limits.SharedSockets`).

Each process (*node*) keeps the exact counts of its own sockets here, in memory, and a copy
in the hash ``{prefix}:sockets:{node}`` (fields ``total``, ``a:{address}``,
``p:{principal}``) whose time to live (``ttl``) it renews every third of it. The set
``{prefix}:socket-nodes`` lists the nodes (every node renews its time to live too: it
vanishes ``ttl`` after the last node).

* **Admitting** a socket is one Lua script call: it sums the three counts over every node
  whose hash still exists (dropping from the set the nodes whose hash expired), compares them
  with the caps and, when there is room, counts the socket into this node's hash — so two
  processes cannot both take the last place.
* **A node that dies** (``kill -9``, a lost machine) stops renewing its hash: its sockets stop
  counting within ``ttl`` seconds of the crash. A node that stops cleanly deletes its hash.
* **Redis unreachable**: :meth:`admit` raises :class:`~taskline.domain.errors.StorageError`
  (the caller applies its own caps and reports the socket with :meth:`counted`); a release
  that cannot be sent is not retried. Either way the node's hash is *dirty*: before it is
  used again (by the next admit or renewal) it is rewritten whole from the counts in memory,
  in one transaction, while no admit or release of this node is under way. The same happens
  when the hash is found missing (it expired while Redis could not be reached, or Redis
  restarted empty).
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.typing import EncodableT

from taskline.bus.redis_subscription import connect, redis_errors
from taskline.domain.errors import StorageError

__all__ = ["RedisSockets"]

logger = logging.getLogger(__name__)

# KEYS: the node set, this node's hash. ARGV: the hashes' prefix, this node, ttl (ms), the
# total, address and principal caps (0: none), the address and principal fields ('': none).
_ADMIT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 'missing' end
local total, address, principal = 0, 0, 0
local afield, pfield = ARGV[7], ARGV[8]
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local counts = redis.call('HMGET', ARGV[1] .. node, 'total', afield, pfield)
  if counts[1] then
    total = total + tonumber(counts[1])
    address = address + tonumber(counts[2] or 0)
    principal = principal + tonumber(counts[3] or 0)
  else
    redis.call('SREM', KEYS[1], node)
  end
end
local ct, ca, cp = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if ct > 0 and total >= ct then return 'total' end
if afield ~= '' and ca > 0 and address >= ca then return 'address' end
if pfield ~= '' and cp > 0 and principal >= cp then return 'principal' end
redis.call('HINCRBY', KEYS[2], 'total', 1)
if afield ~= '' then redis.call('HINCRBY', KEYS[2], afield, 1) end
if pfield ~= '' then redis.call('HINCRBY', KEYS[2], pfield, 1) end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 'ok'
"""

# KEYS: this node's hash. ARGV: ttl (ms), then the fields to count down. 0: the hash is gone.
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -1) <= 0 and ARGV[i] ~= 'total' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the node set, this node's hash. ARGV: this node, ttl (ms). 0: the hash is gone.
_RENEW = """
if redis.call('PEXPIRE', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_TOTAL = "total"


class _Gate:
    """Any number of admits and releases at once, or one rewrite alone."""

    def __init__(self) -> None:
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        self._open.clear()
        try:
            while self._busy:
                await self._idle.wait()
            yield
        finally:
            self._open.set()


def _fields(principal: str | None, address: str | None) -> list[str]:
    fields = [_TOTAL]
    if address is not None:
        fields.append(f"a:{address}")
    if principal is not None:
        fields.append(f"p:{principal}")
    return fields


class RedisSockets:
    """This node's open WebSockets, counted in Redis with those of every other node.

    Args:
        url: Redis URL (``redis://127.0.0.1:6379/0``).
        node: this process's id, unique per deployment.
        ttl: seconds within which a dead node's sockets stop counting.
        prefix: key prefix shared by the processes of one deployment.
        timeout: seconds allowed to connect and for each call.
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        ttl: float = 30.0,
        prefix: str = "taskline",
        timeout: float = 1.0,
    ) -> None:
        if not node:
            raise ValueError("node must be a non-empty string")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.url = url
        self.node = node
        self.ttl = ttl
        self.prefix = prefix
        self._timeout = timeout
        #: This node's open sockets by field (``total``, ``a:…``, ``p:…``): the truth.
        self.counts: dict[str, int] = {_TOTAL: 0}
        self._dirty = True  # the hash does not hold self.counts (yet)
        self._gate = _Gate()
        self._rewriting = asyncio.Lock()
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._renewer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<RedisSockets node={self.node!r} prefix={self.prefix!r}>"

    @property
    def key(self) -> str:
        """This node's hash."""
        return f"{self.prefix}:sockets:{self.node}"

    @property
    def nodes_key(self) -> str:
        return f"{self.prefix}:socket-nodes"

    @property
    def renew_interval(self) -> float:
        return self.ttl / 3

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (lazily) and start renewing this node's hash. Redis need not answer yet."""
        if self._client is not None:
            raise RuntimeError("RedisSockets: already started")
        # retry_once: a connection broken by an outage is replaced at once
        client = connect(
            self.url,
            timeout=self._timeout,
            name=f"taskline-sockets:{self.node}",
            health_checks=False,
            retry_once=True,
        )
        self._client = client
        self._scripts = {
            "admit": client.register_script(_ADMIT),
            "release": client.register_script(_RELEASE),
            "renew": client.register_script(_RENEW),
        }
        self._renewer = asyncio.get_running_loop().create_task(
            self._renew_loop(), name=f"taskline-sockets:{self.node}"
        )

    async def close(self) -> None:
        """Stop renewing, delete this node's hash (its sockets stop counting now, if Redis
        answers) and close the connections. Closing twice is harmless."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.wait({renewer})
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key)
                pipe.srem(self.nodes_key, self.node)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.debug("could not delete %s at shutdown (it expires): %s", self.key, exc)
        await client.aclose()

    # --- counting ---------------------------------------------------------------------------

    async def admit(
        self,
        principal: str | None,
        address: str | None,
        *,
        per_principal: int,
        per_address: int,
        total: int,
    ) -> str | None:
        """See :meth:`taskline.domain.shared_limits.SharedSockets.admit`."""
        fields = _fields(principal, address)
        afield = fields[1] if address is not None else ""
        pfield = fields[-1] if principal is not None else ""
        args: list[str | int] = [f"{self.prefix}:sockets:", self.node, self._ttl_ms, total]
        args += [per_address, per_principal, afield, pfield]
        for _ in range(2):  # a second time after rewriting a hash found missing
            if self._dirty:
                await self._rewrite()
            async with self._gate.shared():
                script = self._script("admit")
                try:
                    with redis_errors("count a WebSocket in"):
                        verdict = await script(keys=[self.nodes_key, self.key], args=args)
                except StorageError:
                    self._dirty = True  # it may have counted the socket in
                    raise
                verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
                if verdict == "ok":
                    self._count(fields, 1)
                    return None
                if verdict != "missing":
                    return verdict
                self._dirty = True
        raise StorageError(f"Redis: {self.key} vanished again as it was written")

    def counted(self, principal: str | None, address: str | None) -> None:
        """See :meth:`taskline.domain.shared_limits.SharedSockets.counted`."""
        self._count(_fields(principal, address), 1)
        self._dirty = True

    async def release(self, principal: str | None, address: str | None) -> None:
        """See :meth:`taskline.domain.shared_limits.SharedSockets.release`."""
        fields = _fields(principal, address)
        async with self._gate.shared():
            self._count(fields, -1)
            if self._dirty or self._client is None:
                return  # the next rewrite counts it out
            try:
                kept = await self._script("release")(keys=[self.key], args=[self._ttl_ms, *fields])
            except (RedisError, OSError) as exc:
                logger.debug("could not count a WebSocket out in %s: %s", self.key, exc)
                kept = 0
            if not kept:
                self._dirty = True

    # --- the hash ---------------------------------------------------------------------------

    def _count(self, fields: list[str], delta: int) -> None:
        counts = self.counts
        for field in fields:
            left = counts.get(field, 0) + delta
            if left > 0 or field == _TOTAL:
                counts[field] = left
            else:
                counts.pop(field, None)

    def _script(self, name: str) -> AsyncScript:
        if self._client is None:
            raise StorageError("Redis: the WebSocket counts are not started (or closed)")
        return self._scripts[name]

    async def _rewrite(self) -> None:
        """Write this node's hash whole from :attr:`counts`, while no admit or release of
        this node is under way (so none is counted twice or lost)."""
        async with self._rewriting:
            if not self._dirty:
                return  # another call rewrote it meanwhile
            async with self._gate.alone():
                client = self._client
                if client is None:
                    raise StorageError("Redis: the WebSocket counts are not started (or closed)")
                self._dirty = False  # a socket counted() during the write dirties it again
                try:
                    with redis_errors(f"write {self.key}"):
                        async with client.pipeline(transaction=True) as pipe:
                            pipe.delete(self.key)
                            pipe.hset(self.key, mapping=_mapping(self.counts))
                            pipe.pexpire(self.key, self._ttl_ms)
                            pipe.sadd(self.nodes_key, self.node)
                            pipe.pexpire(self.nodes_key, self._ttl_ms)
                            await pipe.execute()
                except StorageError:
                    self._dirty = True
                    raise

    async def renew(self) -> None:
        """Extend this node's hash (rewrite it when dirty or missing).

        Raises:
            StorageError: Redis cannot be reached.
        """
        if not self._dirty:
            renew = self._script("renew")
            with redis_errors(f"renew {self.key}"):
                renewed = await renew(
                    keys=[self.nodes_key, self.key], args=[self.node, self._ttl_ms]
                )
            if renewed:
                return
            self._dirty = True
        await self._rewrite()

    async def _renew_loop(self) -> None:
        while True:
            try:
                await self.renew()
            except StorageError as exc:
                logger.debug("%s (retrying in %.1f s)", exc, self.renew_interval)
            await asyncio.sleep(self.renew_interval)


def _mapping(counts: dict[str, int]) -> dict[EncodableT, EncodableT]:
    return dict(counts.items())
