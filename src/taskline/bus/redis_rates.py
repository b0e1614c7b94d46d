"""RedisRates: token buckets in Redis, shared by every server process of a deployment
(:class:`~taskline.domain.shared_limits.SharedRates`).

Each bucket is the hash ``{prefix}:rate:{name}:{key}`` (``tokens``, ``stamp``) and is taken
in one round trip: one Lua script call (``EVALSHA``) reads it, lets in what flowed since
``stamp``, takes a token if there is one, and writes it back, atomically. The clock is the
Redis server's (``TIME``), so processes on machines whose clocks differ share one timeline.
A bucket's key expires once it would be full again (the time it takes to fill, plus a
second): idle principals leave nothing behind, and a bucket found missing starts full, which
it would be anyway.

Redis failures surface as :class:`~taskline.domain.errors.StorageError` (``from`` the
driver's error); the caller then applies its own per-process bucket.
"""

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from taskline.bus.redis_subscription import connect, redis_errors
from taskline.domain.errors import StorageError

__all__ = ["RedisRates"]

# KEYS[1]: the bucket; ARGV: per_second, burst, cost. Returns {wait (text), whole tokens left}.
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, stamp = burst, now
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
if state[1] and state[2] then
  tokens, stamp = tonumber(state[1]), tonumber(state[2])
  if now > stamp then
    tokens = math.min(burst, tokens + (now - stamp) * rate)
    stamp = now
  end
end
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'stamp', string.format('%.6f', stamp))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {string.format('%.6f', wait), math.floor(tokens)}
"""


class RedisRates:
    """Token buckets in one Redis, shared by the processes using the same ``prefix``.

    Args:
        url: Redis URL (``redis://127.0.0.1:6379/0``).
        prefix: key prefix shared by the processes of one deployment.
        timeout: seconds allowed to connect and for each call (a request waits at most
            this long before its process applies its own limit instead).
    """

    def __init__(self, url: str, *, prefix: str = "taskline", timeout: float = 1.0) -> None:
        self.url = url
        self.prefix = prefix
        self._timeout = timeout
        self._client: Redis | None = None
        self._take: AsyncScript | None = None

    def __repr__(self) -> str:
        return f"<RedisRates prefix={self.prefix!r}>"

    def key(self, name: str, key: str) -> str:
        """The Redis key of ``key``'s bucket ``name``."""
        return f"{self.prefix}:rate:{name}:{key}"

    async def start(self) -> None:
        """Make the client (it connects on first use: Redis need not answer yet)."""
        if self._client is not None:
            raise RuntimeError("RedisRates: already started")
        # retry_once: a connection broken by an outage is replaced at once
        self._client = connect(
            self.url,
            timeout=self._timeout,
            name="taskline-rates",
            health_checks=False,
            retry_once=True,
        )
        self._take = self._client.register_script(_TAKE)

    async def take(self, name: str, key: str, per_second: float, burst: int) -> tuple[float, int]:
        """See :meth:`taskline.domain.shared_limits.SharedRates.take`."""
        script = self._take
        if script is None:
            raise StorageError("Redis: the shared rate limits are not started (or closed)")
        with redis_errors(f"take a {name} token"):
            wait, left = await script(keys=[self.key(name, key)], args=[per_second, burst, 1])
        seconds = float(wait)
        return (seconds, 0) if seconds > 0 else (0.0, int(left))

    async def close(self) -> None:
        """Close the connections. Closing twice is harmless."""
        client, self._client, self._take = self._client, None, None
        if client is not None:
            await client.aclose()
