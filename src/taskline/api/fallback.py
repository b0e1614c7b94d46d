"""When the limits' shared store (Redis) cannot be reached: each process applies its own.

Availability over strictness: a request or a WebSocket is never refused (nor answered 500)
because Redis is down; while it is, every process counts alone, so a principal may get up to
its limits once per process. :class:`Fallback` decides when to ask the store again and logs
one warning per outage (and one line when it answers again).
"""

import logging
import time
from collections.abc import Callable

__all__ = ["Fallback"]

logger = logging.getLogger("taskline.limits")


class Fallback:
    """The shared store's availability, as the limits see it.

    After a failure the store is not asked for ``retry`` seconds (requests do not each wait
    for a timeout); then one caller asks (:meth:`usable` says yes once per ``retry``), and
    :meth:`succeeded` ends the outage.

    Args:
        retry: seconds between two tries while the store is unreachable.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, retry: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry = retry
        self.clock = clock
        self._since: float | None = None  # when the outage began (None: no outage)
        self._next = 0.0
        #: Outages seen so far.
        self.outages = 0

    @property
    def down(self) -> bool:
        """Whether the limits are per process now (the store did not answer)."""
        return self._since is not None

    def usable(self) -> bool:
        """Whether to ask the store now: always, but once per ``retry`` during an outage."""
        if self._since is None:
            return True
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.retry
        return True

    def failed(self, error: Exception) -> None:
        """The store did not answer: fall back (a warning when an outage begins)."""
        now = self.clock()
        self._next = now + self.retry
        if self._since is None:
            self._since = now
            self.outages += 1
            logger.warning(
                "limits: %s; until it answers again each process applies its own rate "
                "limits and WebSocket caps",
                error,
            )

    def succeeded(self) -> None:
        """The store answered: the limits are shared again (one line if an outage ends)."""
        since, self._since = self._since, None
        if since is not None:
            logger.warning(
                "limits: Redis answers again after %.1f s; the limits are shared by every "
                "process again",
                self.clock() - since,
            )
