"""Ingest: store a batch of events (validated, applied, appended in one transaction), then
hand the committed envelopes to the bus. The one path every publisher goes through."""

from collections.abc import Sequence

from taskline.bus import EventBus
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.store.database import Database
from taskline.store.events import EventLog

__all__ = ["Ingest"]


class Ingest:
    """Publishes events for agents and people.

    Args:
        database: where the log lives.
        bus: told about every committed batch (live delivery, handlers, other processes).
        keep_last: retention; ``None`` keeps every event.
    """

    def __init__(self, database: Database, bus: EventBus, *, keep_last: int | None = None) -> None:
        self.database = database
        self.bus = bus
        self.keep_last = keep_last

    async def publish(
        self, task_id: str, events: Sequence[EventIn], *, source: str | None = None
    ) -> list[WebSocketMessage]:
        """Store ``events`` all or nothing and return them with their seqs.

        Nothing is delivered unless it was committed. Raises what
        :meth:`EventLog.append <taskline.store.events.EventLog.append>` raises.
        """
        async with self.database.write() as session:
            log = EventLog(session, keep_last=self.keep_last)
            committed = await log.append(task_id, events, source=source)
        await self.bus.dispatch(committed)
        return committed
