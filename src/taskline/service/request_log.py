"""What a change of a task's requests writes besides the request itself, inside the caller's
transaction: the events that log it and the task's ``needs_input``.

Shared by :class:`~taskline.service.requests.RequestService` and the recorder, which cancels
a task's open requests in the transaction that ends the task.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.events import EventIn, WebSocketEventType
from taskline.domain.requests import Request, RequestStatus, close, event_for
from taskline.store.requests import RequestStore
from taskline.store.tasks import TaskStore

__all__ = ["cancel_open", "logged"]


async def logged(session: AsyncSession, task_id: str, requests: Sequence[Request]) -> list[EventIn]:
    """The events logging ``requests`` (stored already) in their current status, then — when
    the task's ``needs_input`` changed because of them — a ``task_updated`` carrying the task
    with ``changes: ["needs_input"]`` (what the board follows)."""
    events = [
        EventIn(event_type=event_for(request), data=request.model_dump(mode="json"))
        for request in requests
    ]
    if await RequestStore(session).refresh_needs_input(task_id) is not None:
        task = await TaskStore(session).get(task_id)
        events.append(
            EventIn(
                event_type=WebSocketEventType.TASK_UPDATED,
                data={"task": task.model_dump(mode="json"), "changes": ["needs_input"]},
            )
        )
    return events


async def cancel_open(
    session: AsyncSession, task_id: str, *, by: str, now: datetime, comment: str
) -> list[EventIn]:
    """Cancel every open request of the task (its row locked by the caller); return the
    events that log it (none when it had none: one indexed read)."""
    store = RequestStore(session)
    cancelled = [
        close(request, RequestStatus.CANCELLED, by=by, now=now, comment=comment)
        for request in await store.open_of(task_id)
    ]
    if not cancelled:
        return []
    for request in cancelled:
        await store.save(request)
    return await logged(session, task_id, cancelled)
