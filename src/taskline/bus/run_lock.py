"""RunLock: one AG-UI run per thread across server processes, held in Redis.

A run takes the key ``{prefix}:agui-run:{task_id}`` (``SET NX PX``, the run id as value),
takes it again every ``ttl / 3`` seconds while it streams (:meth:`acquire` extends a lock
the run holds) and releases it at
the end with a compare-and-delete (:meth:`release`: a run never frees another run's lock).
A process that dies (``kill -9``) stops refreshing: its runs' keys expire within ``ttl``
seconds and the thread takes runs again.

Redis failures surface as :class:`~taskline.domain.errors.StorageError` (``from`` the driver's
error); the gateway then keeps to its own process's lock (see
:mod:`taskline.service.agui_gateway`).
"""

from taskline.bus.redis_subscription import as_text, connect, redis_errors

__all__ = ["RunLock"]

# Take the key when free (or already this run's: extend it); return who holds it now.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"""

# Delete the key only while it is this run's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RunLock:
    """Run locks in one Redis, shared by the processes of a deployment.

    Args:
        url: Redis URL (``redis://127.0.0.1:6379/0``).
        ttl: seconds a lock outlives the last refresh of its process (a crash frees the
            thread within it).
        prefix: key prefix shared by the processes of one deployment.
        timeout: seconds allowed to connect and for each command.
    """

    def __init__(
        self, url: str, *, ttl: float = 30.0, prefix: str = "taskline", timeout: float = 5.0
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.url = url
        self.ttl = ttl
        self.prefix = prefix
        self._client = connect(url, timeout=timeout, name="taskline-agui-runs", health_checks=False)

    def __repr__(self) -> str:
        return f"<RunLock prefix={self.prefix!r} ttl={self.ttl:g}>"

    @property
    def refresh_interval(self) -> float:
        """Seconds between two refreshes of a streaming run's lock."""
        return self.ttl / 3

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}:agui-run:{task_id}"

    @property
    def _ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def holder(self, task_id: str) -> str | None:
        """The run id holding the thread of ``task_id`` (None: no run anywhere)."""
        with redis_errors(f"read the run lock of task {task_id}"):
            return as_text(await self._client.get(self._key(task_id)))

    async def acquire(self, task_id: str, run_id: str) -> str:
        """Take the thread's lock for ``run_id``, or extend it when ``run_id`` holds it;
        return the run holding it now (``run_id`` itself when taken or extended)."""
        with redis_errors(f"take the run lock of task {task_id}"):
            holder = await self._client.eval(_ACQUIRE, 1, self._key(task_id), run_id, self._ms)
        return as_text(holder) or run_id

    async def release(self, task_id: str, run_id: str) -> bool:
        """Free the thread if ``run_id`` holds it; False when another run (or nobody) did."""
        with redis_errors(f"release the run lock of task {task_id}"):
            freed = await self._client.eval(_RELEASE, 1, self._key(task_id), run_id)
        return bool(freed)

    async def close(self) -> None:
        """Close the connections. Closing twice is harmless."""
        await self._client.aclose()
