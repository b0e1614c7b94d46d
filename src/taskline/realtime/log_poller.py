"""Bounded staleness while Redis is down: poll the log heads of the tasks followed here.

Redis pub/sub is fire-and-forget: a batch published while this process's subscription is lost
never arrives. While the bus's link is down (:attr:`EventBus.link`: the notifier is not
subscribed, or this process's last publish failed), every ``interval`` seconds the poller

1. reads the log heads of every task with a subscriber on this process, in one statement
   (per 1,000 tasks);
2. for the tasks whose head is past what this process has delivered (the newest seq the bus
   delivered here, or a subscriber's cursor if higher), reads the missing events in one
   statement (``read_limit`` at most; read again while full);
3. hands them to :meth:`EventBus.receive`, which delivers them here exactly as the notifier
   would have (history, handlers, every listener: the subscribers, the board, MCP, webhooks).

Once the link is up again (or a break was shorter than one interval: ``LinkStatus.breaks``
moved on) it polls once more — what was committed between the last poll and the
resubscription is in no pub/sub message — tells board viewers to reload the task list
(the board follows every task; only the tasks followed here were polled), and stops.

Edges: a poll that fails (the database does not answer) is logged and tried again at the next
interval, the final one included. An event the poll finds below what was delivered here
meanwhile (pub/sub brought a later one first) is not handed on: the subscribers fill such a
gap from the log themselves, as they do for any jump. Without Redis (one process) the link is
never down and the poller only sleeps.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from taskline.bus.event_bus import EventBus, LinkStatus
from taskline.domain.events import WebSocketMessage
from taskline.realtime.manager import ConnectionManager
from taskline.store.database import Database
from taskline.store.events import EventLog, LogHead

__all__ = ["LogPoller"]

logger = logging.getLogger("taskline.realtime")

#: Tasks whose heads one statement reads.
_HEADS_PER_STATEMENT = 1000
_BOARD_MESSAGE = (
    "board events of other server processes may have been missed while Redis was down; "
    "reload the task list"
)


class LogPoller:
    """Poll the log while the bus's link is down (see the module docstring).

    Args:
        interval: seconds between two polls while Redis is down (the staleness bound).
        read_limit: events one statement reads at most.

    Register :meth:`on_committed` as a bus listener (``start`` does it), then ``start``;
    ``stop`` ends the loop (a poll under way is cancelled). Stopping twice is harmless.
    """

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        connections: ConnectionManager,
        *,
        interval: float = 1.0,
        read_limit: int = 1000,
    ) -> None:
        if interval <= 0 or read_limit < 1:
            raise ValueError("interval must be positive and read_limit >= 1")
        self.database = database
        self.bus = bus
        self.connections = connections
        self.interval = interval
        self.read_limit = read_limit
        #: task id -> newest seq the bus delivered here (tasks followed here only)
        self._delivered: dict[str, int] = {}
        self._loop: asyncio.Task[None] | None = None
        self.polling = False  #: True from the first poll of an outage until the final one
        self.stats = {"polls": 0, "polls_failed": 0, "events_handed": 0, "outages": 0}

    async def start(self) -> None:
        """Listen to the bus and start the loop; starting twice raises ``RuntimeError``."""
        if self._loop is not None:
            raise RuntimeError("LogPoller: already started")
        self.bus.add_listener(self.on_committed)
        self._loop = asyncio.get_running_loop().create_task(self._run(), name="taskline-log-poller")

    async def stop(self) -> None:
        """Stop polling and listening."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        self.bus.remove_listener(self.on_committed)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop

    async def on_committed(self, messages: Sequence[WebSocketMessage]) -> None:
        """Bus listener: remember the newest seq delivered here of each task followed here."""
        followed = self.connections.registry.by_task
        for message in messages:
            task_id, seq = message.task_id, message.seq
            if task_id is None or seq is None or task_id not in followed:
                continue
            if seq > self._delivered.get(task_id, 0):
                self._delivered[task_id] = seq

    async def poll(self) -> int:
        """One poll: hand the events committed past what was delivered here of the tasks
        followed here to the bus; return how many.

        Raises:
            StorageError: the database did not answer (what was read before it is handed
                on already; the next poll goes on from there).
        """
        followed = list(self.connections.registry.by_task)
        self._delivered = {
            t: s for t, s in self._delivered.items() if t in self.connections.registry.by_task
        }
        if not followed:
            return 0
        handed = 0
        async with self.database.read() as session:
            log = EventLog(session)
            heads: dict[str, LogHead] = {}
            for start in range(0, len(followed), _HEADS_PER_STATEMENT):
                heads.update(await log.heads(followed[start : start + _HEADS_PER_STATEMENT]))
            known = {task_id: self._cursor(task_id) for task_id in heads}
            cursors = {
                task_id: max(known[task_id], head.first_seq - 1)
                for task_id, head in heads.items()
                if head.last_seq > known[task_id]
            }
            while cursors:
                events = await log.read_after(cursors, limit=self.read_limit)
                # what the bus delivered here meanwhile (pub/sub back, or this process's own
                # publishes) is not handed again
                fresh = [
                    e
                    for e in events
                    if (e.seq or 0)
                    > max(known[e.task_id or ""], self._delivered.get(e.task_id or "", 0))
                ]
                if fresh:
                    await self.bus.receive(fresh)
                    handed += len(fresh)
                if len(events) < self.read_limit:
                    break
                for event in events:  # full: read on past what came back
                    task_id = event.task_id or ""
                    cursors[task_id] = max(cursors[task_id], event.seq or 0)
                cursors = {t: c for t, c in cursors.items() if c < heads[t].last_seq}
        self.stats["polls"] += 1
        self.stats["events_handed"] += handed
        return handed

    def get_stats(self) -> dict[str, Any]:
        """Counters, whether an outage is being polled, and the interval."""
        return {**self.stats, "polling": self.polling, "interval": self.interval}

    # --- internals --------------------------------------------------------------------------

    def _cursor(self, task_id: str) -> int:
        """What this process has delivered of the task: the bus's newest seq, or the
        furthest subscriber's cursor (a subscriber connects at the log's head)."""
        subscribers = self.connections.registry.subscribers_of(task_id) or ()
        furthest = max((s.last_seq for s in subscribers), default=0)
        return max(self._delivered.get(task_id, 0), furthest)

    async def _run(self) -> None:
        """Look at the link every ``interval``; poll while it is down, and once after."""
        seen = self.bus.link
        while True:
            await asyncio.sleep(self.interval)
            link = self.bus.link
            final = link.up and (self.polling or link.breaks != seen.breaks)
            if link.up and not final:
                seen = link
                continue
            if not link.up and not self.polling:
                self.polling = True
                self.stats["outages"] += 1
                logger.warning(
                    "Redis link down: polling the log every %.1f s for other processes' events",
                    self.interval,
                )
            caught_up = await self._try_poll(link)
            if final and caught_up:
                self.polling = False
                told = self.connections.resync_boards(_BOARD_MESSAGE)
                logger.info(
                    "Redis link up again: caught up from the log (%d board viewer(s) told "
                    "to reload)",
                    told,
                )
            elif final:
                self.polling = True  # the final catch-up again at the next interval
            seen = link

    async def _try_poll(self, link: LinkStatus) -> bool:
        """Poll once; log a failure (tried again at the next interval) and return False."""
        try:
            await self.poll()
        except Exception as exc:
            self.stats["polls_failed"] += 1
            logger.warning(
                "could not poll the log while the Redis link is %s: %s",
                "up" if link.up else "down",
                exc,
            )
            return False
        return True
