"""AG-UI endpoints. ``GET /api/v1/tasks/{task_id}/agui``: the task's runs as an AG-UI
event stream (SSE) for any number of viewers, replayed from the log, then live.

A viewer joining mid-run first gets the prelude of :class:`~taskline.agui.projection.RunView`
(RUN_STARTED, STATE_SNAPSHOT, MESSAGES_SNAPSHOT, re-opened message and tool calls), so the
official client accepts the stream. Each frame carries ``id: <seq>``; reconnecting with
``Last-Event-ID`` continues after that seq. Runs go on when every viewer leaves.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from taskline.agui.projection import RunView
from taskline.api.deps import DatabaseDep
from taskline.domain.errors import InvalidInputError, NotFoundError
from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.realtime import CloseCode, ConnectionManager
from taskline.store.database import Database
from taskline.store.events import EventLog
from taskline.store.tasks import TaskStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ag-ui"])
_ENCODER = EventEncoder()


def _frames(events: list[BaseEvent], seq: int | None) -> str:
    prefix = f"id: {seq}\n" if seq is not None else ""
    return "".join(prefix + _ENCODER.encode(event) for event in events)


async def _fold_log(database: Database, task_id: str, until: int | None) -> RunView:
    """Fold the task's log (up to ``until``, or all of it) into a run view."""
    view = RunView()
    async with database.read() as session:
        log = EventLog(session)
        await TaskStore(session).get(task_id)  # 404 before anything is streamed
        head = (await log.head(task_id)).last_seq
        end = head if until is None else min(until, head)
        since = 0
        while since < end:
            chunk = await log.read(task_id, since=since, limit=1000)
            chunk = [m for m in chunk if (m.seq or 0) <= end]
            if not chunk:
                break
            for message in chunk:
                view.apply(message)
            since = chunk[-1].seq or end
    view.last_seq = end
    return view


@router.get("/tasks/{task_id}/agui", summary="The task's runs as an AG-UI event stream")
async def watch_agui(
    task_id: str,
    request: Request,
    database: DatabaseDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    since: int | None = None
    if last_event_id:
        try:
            since = int(last_event_id)
        except ValueError:
            raise InvalidInputError(
                "Last-Event-ID must be a seq (integer)", field="Last-Event-ID"
            ) from None
    view = await _fold_log(database, task_id, since)
    prelude = "" if since is not None else _frames(view.prelude(), view.last_seq or None)
    manager: ConnectionManager = request.app.state.connections
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def formatter(message: WebSocketMessage | None, frame: str) -> str:
        if message is None or message.seq is None:
            is_heartbeat = (
                message is not None and message.event_type == WebSocketEventType.HEARTBEAT
            )
            return ": heartbeat\n\n" if is_heartbeat else ""
        return _frames(view.apply(message), message.seq)

    async def sender(text: str) -> None:
        if text:
            await queue.put(text)

    async def closer(code: int, reason: str) -> None:
        await queue.put(None)

    subscriber = await manager.attach(
        sender,
        closer,
        task_id,
        since=view.last_seq,
        user_agent=request.headers.get("user-agent"),
        formatter=formatter,
    )
    if subscriber is None:
        raise NotFoundError("task", task_id)
    client_id = subscriber.client_id

    async def body() -> AsyncIterator[str]:
        try:
            if prelude:
                yield prelude
            while True:
                item = await queue.get()
                if item is None:
                    return
                manager.touch(client_id)
                yield item
        finally:
            await manager.disconnect(client_id, CloseCode.NORMAL, "stream ended")

    return StreamingResponse(
        body(),
        media_type=_ENCODER.get_content_type(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
