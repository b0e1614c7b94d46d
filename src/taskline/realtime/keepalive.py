"""The timers every connection lives by: server heartbeats, closing connections that have
gone quiet (``stale_after``: nothing from the client) and those that stopped taking what they
are sent (``write_timeout``: frames waited and nobody took any)."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from taskline.realtime.registry import Registry
from taskline.realtime.subscriber import Subscriber

__all__ = ["Keepalive"]


class Keepalive:
    """Runs the heartbeat/stale loop and the write watchdog (see the module docstring).

    Args:
        beat: queue a heartbeat to a subscriber.
        stale: close a subscriber that sent nothing for ``stale_after`` (4408).
        stalled: close a subscriber that took nothing for ``write_timeout`` (4008).
        expire: drop offline queues past their time to live (given the monotonic time).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        heartbeat_interval: float,
        stale_after: float,
        write_timeout: float,
        beat: Callable[[Subscriber], None],
        stale: Callable[[Subscriber], Awaitable[None]],
        stalled: Callable[[Subscriber], None],
        expire: Callable[[float], object],
    ) -> None:
        self.registry = registry
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.write_timeout = write_timeout
        self._beat = beat
        self._stale = stale
        self._stalled = stalled
        self._expire = expire
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="taskline-heartbeat"),
            asyncio.create_task(self._watch_writes(), name="taskline-write-watchdog"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(min(self.heartbeat_interval, self.stale_after / 2))
            now = time.monotonic()
            self._expire(now)
            for connection in self.registry:
                subscriber = connection.subscriber
                if now - subscriber.last_seen > self.stale_after:
                    await self._stale(subscriber)
                else:
                    self._beat(subscriber)

    async def _watch_writes(self) -> None:
        while True:
            await asyncio.sleep(self.write_timeout / 4)
            now = time.monotonic()
            for connection in self.registry:
                since = connection.subscriber.blocked_since
                if since and now - since > self.write_timeout:
                    self._stalled(connection.subscriber)
