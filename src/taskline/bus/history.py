"""EventHistory: the most recent committed events one bus has seen, for quick look-ups.

It is a window, not a log: the oldest event leaves when a new one arrives at capacity, and
events are kept in arrival order (which may differ from seq order across tasks and processes).
The durable log answers everything older.
"""

from collections import Counter, deque
from collections.abc import Iterable

from taskline.domain.events import WebSocketEventType, WebSocketMessage

__all__ = ["EventHistory"]


class EventHistory:
    """The last ``capacity`` events recorded, plus a count per type of all ever recorded."""

    __slots__ = ("_events", "counts")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("history capacity must be >= 0")
        self._events: deque[WebSocketMessage] = deque(maxlen=capacity)
        #: Events recorded since creation, per event type value (not limited by capacity).
        self.counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._events)

    @property
    def capacity(self) -> int:
        """How many events the window holds at most."""
        return self._events.maxlen or 0

    def record(self, messages: Iterable[WebSocketMessage]) -> None:
        """Append ``messages``, evicting the oldest beyond capacity."""
        for message in messages:
            self._events.append(message)
            self.counts[message.event_type.value] += 1

    def query(
        self,
        task_id: str | None = None,
        event_type: WebSocketEventType | None = None,
        limit: int | None = None,
    ) -> list[WebSocketMessage]:
        """The newest ``limit`` events matching the filters, oldest first.

        ``None`` disables a filter or the limit; a ``limit`` <= 0 gives an empty list.
        """
        if limit is not None and limit <= 0:
            return []
        found: list[WebSocketMessage] = []
        for message in reversed(self._events):
            if (task_id is None or message.task_id == task_id) and (
                event_type is None or message.event_type == event_type
            ):
                found.append(message)
                if limit is not None and len(found) >= limit:
                    break
        found.reverse()
        return found
