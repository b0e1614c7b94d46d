"""Log what a REST change did, in the same transaction as the change.

The routes call these inside ``database.write()``; after commit they hand the returned
envelopes to ``bus.dispatch`` so live viewers see them.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.events import STATUS_EVENTS, EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.models import Task
from taskline.domain.status import TaskStatus
from taskline.store.events import EventLog

__all__ = ["record", "record_task_change"]

E = WebSocketEventType
_EVENT_FOR_STATUS: dict[tuple[TaskStatus | None, TaskStatus], WebSocketEventType] = {}
for _event, _status in STATUS_EVENTS.items():
    if _event != E.TASK_RESUMED:
        _EVENT_FOR_STATUS[(None, TaskStatus(_status))] = _event
_EVENT_FOR_STATUS[(TaskStatus.PAUSED, TaskStatus.IN_PROGRESS)] = E.TASK_RESUMED


def _status_event(before: TaskStatus, after: TaskStatus) -> WebSocketEventType | None:
    return _EVENT_FOR_STATUS.get((before, after)) or _EVENT_FOR_STATUS.get((None, after))


async def record(
    session: AsyncSession, task_id: str, event_type: WebSocketEventType, data: dict[str, Any]
) -> list[WebSocketMessage]:
    """Append one server-made event to the task's log."""
    return await EventLog(session).append(
        task_id, [EventIn(event_type=event_type, data=data)], source="api", server=True
    )


async def record_task_change(
    session: AsyncSession,
    task: Task,
    *,
    before: Task | None,
    changed: Iterable[str] = (),
) -> list[WebSocketMessage]:
    """Log a created or changed task: ``task_created``/``task_updated``, plus the status
    event (``task_started``, ``task_completed``, ...) when the status moved."""
    snapshot = task.model_dump(mode="json")
    if before is None:
        created = EventIn(event_type=E.TASK_CREATED, data={"task": snapshot})
        return [await EventLog(session).start(task.id, created, source="api")]
    events = [
        EventIn(event_type=E.TASK_UPDATED, data={"task": snapshot, "changes": sorted(changed)})
    ]
    if before.status != task.status:
        kind = _status_event(before.status, task.status)
        if kind is not None:
            events.append(EventIn(event_type=kind, data={"result": task.result}))
    return await EventLog(session).append(task.id, events, source="api", server=True)
