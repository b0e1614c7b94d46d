"""Bringing a subscriber from its cursor to the head of its task's log, at the pace its
connection drains: the path both a ``since`` replay and a reader that fell behind take.

Each round waits until the subscriber's outbox has room (half its bound), then takes the
next events after its cursor from the newest events kept in memory
(:class:`~taskline.realtime.recent.RecentEvents`, frames shared with the fan-out) or, when
they are older than that, from the log, about half the bound's worth at a time. The delivery
core says when it is live again.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence

from taskline.realtime.delivery import DeliveryState
from taskline.realtime.notices import encode
from taskline.realtime.recent import RecentEvents
from taskline.realtime.registry import Connection
from taskline.realtime.subscriber import Pending, frame_size
from taskline.store.database import Database
from taskline.store.events import EventLog

__all__ = ["CatchUp"]

logger = logging.getLogger("taskline.realtime")

#: Called when reading failed (the connection is closed, 1001: it may resume).
Failed = Callable[[Connection], Awaitable[None]]


class CatchUp:
    """Replays for subscribers (see the module docstring)."""

    def __init__(self, database: Database, recent: RecentEvents, failed: Failed) -> None:
        self.database = database
        self.recent = recent
        self._failed = failed
        self.log_reads = 0  #: rounds that had to read the log

    async def run(self, connection: Connection) -> None:
        """Catch the connection's subscriber up; one run per subscriber at a time."""
        if connection.catching_up:
            return
        connection.catching_up = True
        subscriber = connection.subscriber
        task_id = subscriber.task_id
        assert task_id is not None
        try:
            while subscriber.state == DeliveryState.REPLAYING:
                await subscriber.wait_for_room()
                if subscriber.state != DeliveryState.REPLAYING:
                    return
                limit = subscriber.delivery.read_limit()
                since = subscriber.last_seq
                cached = self.recent.after(task_id, since, limit)
                if cached is not None:
                    events, frames, sizes = cached
                else:
                    self.log_reads += 1
                    async with self.database.read() as session:
                        events = await EventLog(session).read(task_id, since=since, limit=limit)
                    frames = [encode(event) for event in events]
                    sizes = [frame_size(f) for f in frames]
                items: Sequence[Pending] = (
                    [(e, f) for e, f in zip(events, frames, strict=True)]
                    if subscriber.pairs
                    else frames
                )
                subscriber.replayed(items, [event.seq or 0 for event in events], sizes)
        except Exception:
            logger.exception("replay failed for %s", subscriber.client_id)
            await self._failed(connection)
        finally:
            connection.catching_up = False
