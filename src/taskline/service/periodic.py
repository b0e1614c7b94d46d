"""A background task that runs one round of some work every few seconds: the server's
sweepers (leases that ran out, requests that expired) are each one of these."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

logger = logging.getLogger("taskline.service")


class Periodic:
    """Run ``work`` now and then every ``interval`` seconds, until :meth:`stop`.

    A round that raises is logged (``what`` names it) and the next round tries again; one
    round never overlaps the next. Stopping cancels the task: a round in progress is
    interrupted (its transaction is rolled back).

    Args:
        name: the asyncio task's name (shows in task dumps).
        what: what a round does, for the log line of a failed one ("giving back leases").
    """

    def __init__(
        self, work: Callable[[], Awaitable[object]], *, interval: float, name: str, what: str
    ) -> None:
        self.work = work
        self.interval = interval
        self.name = name
        self.what = what
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the rounds (a no-op when they run already)."""
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Stop the rounds; returns once the task has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.work()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: the next round tries again
                logger.exception("%s failed", self.what)
            await asyncio.sleep(self.interval)
