"""The events that describe a change people (or the system) made to a task through the API.

A created task logs ``task_created`` (with the task); a changed one ``task_updated`` (the task
and the names of the changed fields) and, when its status moved, the status event
(``task_started``, ``task_paused``, ``task_resumed``, ``task_completed``, ...); a ticked subtask
``subtask_updated``; a deleted task a final ``task_deleted``. A claim, a renewal, a release
and an expired lease log ``task_updated`` with a ``lease`` member saying what happened (and a
claim ``task_started``, since the task moved to ``in_progress``).
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from taskline.domain.events import STATUS_EVENTS, EventIn, WebSocketEventType
from taskline.domain.models import Subtask, Task
from taskline.domain.status import TaskStatus

__all__ = [
    "LeaseAction",
    "created",
    "deleted",
    "lease_changed",
    "message_posted",
    "subtask_changed",
    "task_changed",
]

#: What happened to a task's lease.
LeaseAction = Literal["claimed", "renewed", "released", "expired"]

E = WebSocketEventType

_EVENT_FOR_STATUS: dict[tuple[TaskStatus | None, TaskStatus], WebSocketEventType] = {
    (None, TaskStatus(status)): event
    for event, status in STATUS_EVENTS.items()
    if event != E.TASK_RESUMED
}
_EVENT_FOR_STATUS[(TaskStatus.PAUSED, TaskStatus.IN_PROGRESS)] = E.TASK_RESUMED


def _status_event(before: TaskStatus, after: TaskStatus) -> WebSocketEventType | None:
    return _EVENT_FOR_STATUS.get((before, after)) or _EVENT_FOR_STATUS.get((None, after))


def created(task: Task) -> EventIn:
    """``task_created`` carrying the new task."""
    return EventIn(event_type=E.TASK_CREATED, data={"task": task.model_dump(mode="json")})


def task_changed(task: Task, *, before: Task, changed: Iterable[str]) -> list[EventIn]:
    """``task_updated`` (and the status event if the status moved) for a changed task."""
    events = [
        EventIn(
            event_type=E.TASK_UPDATED,
            data={"task": task.model_dump(mode="json"), "changes": sorted(changed)},
        )
    ]
    if before.status != task.status:
        kind = _status_event(before.status, task.status)
        if kind is not None:
            events.append(EventIn(event_type=kind, data={"result": task.result}))
    return events


def subtask_changed(subtask: Subtask) -> EventIn:
    """``subtask_updated`` for a renamed, ticked or moved subtask."""
    data = {"subtask_id": subtask.id, "done": subtask.done, "title": subtask.title}
    return EventIn(event_type=E.SUBTASK_UPDATED, data=data)


def message_posted(message: dict[str, Any]) -> EventIn:
    """The ``custom`` event ``task_message`` that logs a message of the task's thread."""
    return EventIn(event_type=E.CUSTOM, data={"name": "task_message", "value": message})


def deleted() -> EventIn:
    """The final ``task_deleted`` of a task's log."""
    return EventIn(event_type=E.TASK_DELETED)


def lease_changed(
    task: Task,
    *,
    before: Task | TaskStatus,
    action: LeaseAction,
    agent_id: str,
    token: int,
    expires_at: datetime | None,
    reason: str,
) -> list[EventIn]:
    """``task_updated`` for a claim, renewal, release or expiry (``before``: the task, or
    its status, before it), its ``lease`` member naming the agent, the fencing token, when
    the lease expires (or expired, or ended) and why; plus the status event if it moved."""
    status = before if isinstance(before, TaskStatus) else before.status
    changed = ["lease"]
    if status != task.status:
        changed.append("status")
    if isinstance(before, Task):
        reassigned = before.assigned_agent_id != task.assigned_agent_id
    else:  # a claim assigns the task; giving it back unassigns it unless it was assigned before
        reassigned = action == "claimed" or (action != "renewed" and not task.assigned_agent_id)
    if reassigned:
        changed.append("assigned_agent_id")
    lease = {
        "action": action,
        "agent_id": agent_id,
        "token": token,
        "expires_at": None if expires_at is None else expires_at.isoformat().replace("+00:00", "Z"),
        "reason": reason,
    }
    data = {"task": task.model_dump(mode="json"), "changes": sorted(set(changed)), "lease": lease}
    events = [EventIn(event_type=E.TASK_UPDATED, data=data)]
    if status != task.status:
        kind = _status_event(status, task.status)
        if kind is not None:
            events.append(EventIn(event_type=kind, data={"reason": reason}))
    return events
