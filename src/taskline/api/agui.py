"""AG-UI endpoints.

``POST /api/v1/agui``: run an AG-UI request (what ``HttpAgent.runAgent`` calls); the work is
done by :class:`~taskline.service.agui_gateway.AguiGateway`. An invalid ``RunAgentInput`` is a 422
problem before anything is streamed; once streaming, failures are ``RUN_ERROR`` events and the
body ends right after the terminal event.

``GET /api/v1/tasks/{task_id}/agui``: the task's runs as an AG-UI event stream (SSE) for any
number of viewers, replayed from the log, then live. ``?until=run_end`` ends the body after
the first terminal event (``RUN_FINISHED``/``RUN_ERROR``) it sends: that of the run in
progress, of the first run after the ``Last-Event-ID`` cursor (``Last-Event-ID: 0`` replays
the task's first run), or of the next run when none is open. A client that resolves only when
the body ends (``HttpAgent``) needs it; without it the stream stays open across runs.

A viewer joining mid-run first gets the prelude of :class:`~taskline.agui.projection.RunView`
(RUN_STARTED, STATE_SNAPSHOT, MESSAGES_SNAPSHOT, re-opened message and tool calls), so the
official client accepts the stream. Each frame carries ``id: <seq>``; reconnecting with
``Last-Event-ID`` continues after that seq. Runs go on when every viewer leaves.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from taskline.agui.projection import RunView
from taskline.agui.translate import to_agui
from taskline.api.deps import DatabaseDep
from taskline.domain.errors import InvalidInputError, NotFoundError
from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.realtime import CloseCode, ConnectionManager
from taskline.service.agui_gateway import AguiGateway
from taskline.store.database import Database
from taskline.store.events import EventLog
from taskline.store.tasks import TaskStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ag-ui"])
_ENCODER = EventEncoder()


#: An SSE comment put after a terminal event (clients ignore comments); with ``until`` the
#: body ends there. JSON data never holds a raw newline, so only a real frame can match.
_RUN_END = "\n\n: run-end\n\n"


def _ended(events: list[BaseEvent]) -> bool:
    return any(e.type.value in {"RUN_FINISHED", "RUN_ERROR"} for e in events)


#: The AG-UI events and frames of recent log events, shared by every viewer (translated and
#: encoded once per event, not once per viewer). Keyed by event id and seq; bounded.
_SHARED: OrderedDict[tuple[str, int], tuple[list[BaseEvent], str]] = OrderedDict()
_SHARED_SIZE = 4096


def _translated(message: WebSocketMessage, seq: int) -> tuple[list[BaseEvent], str]:
    key = (message.id, seq)
    found = _SHARED.get(key)
    if found is None:
        events = to_agui(message)
        found = (events, _frames(events, seq))
        _SHARED[key] = found
        if len(_SHARED) > _SHARED_SIZE:
            _SHARED.popitem(last=False)
    return found


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
    until: Annotated[
        Literal["run_end"] | None,
        Query(description="run_end: end the body after the current (or next) run's end."),
    ] = None,
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
        translated, encoded = _translated(message, message.seq)
        events = view.apply(message, translated)
        same = len(events) == len(translated) and all(
            a is b for a, b in zip(events, translated, strict=True)
        )
        text = encoded if same else _frames(events, message.seq)
        return text[:-2] + _RUN_END if until and text and _ended(events) else text

    async def sender(text: str) -> None:
        # returns once the response has taken the frame (the manager's outbox waits instead)
        if text:
            await queue.put(text)
            await queue.join()

    async def closer(code: int, reason: str) -> None:
        queue.put_nowait(None)

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
                try:
                    if item is None:
                        return
                    manager.touch(client_id)
                    yield item
                    if until and _RUN_END in item:
                        return
                finally:
                    queue.task_done()
        finally:
            await manager.disconnect(client_id, CloseCode.NORMAL, "stream ended")

    return StreamingResponse(
        body(),
        media_type=_ENCODER.get_content_type(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/agui",
    summary="Run an AG-UI request (RunAgentInput in, AG-UI SSE out)",
    response_class=StreamingResponse,
)
async def run_agui(request: Request) -> StreamingResponse:
    gateway: AguiGateway = request.app.state.services.agui
    prepared = await gateway.prepare(await request.body())  # 422 before streaming

    async def body() -> AsyncIterator[str]:
        async for event in gateway.run(prepared):
            yield _ENCODER.encode(event)

    return StreamingResponse(
        body(),
        media_type=_ENCODER.get_content_type(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
