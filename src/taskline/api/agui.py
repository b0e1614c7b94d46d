"""AG-UI endpoints.

``POST /api/v1/agui``: run an AG-UI request (what ``HttpAgent.runAgent`` calls); the work is
done by :class:`~taskline.service.agui_gateway.AguiGateway`. An invalid ``RunAgentInput`` is a 422
problem before anything is streamed; once streaming, failures are ``RUN_ERROR`` events and the
body ends right after the terminal event.

``GET /api/v1/tasks/{task_id:id}/agui``: the task's runs as an AG-UI event stream (SSE) for any
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

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from taskline.agui import sse_frame
from taskline.api.cursors import LastEventId, last_event_id_cursor
from taskline.api.deps import ActorDep
from taskline.api.paths import TaskId
from taskline.service import Services
from taskline.service.agui_gateway import AguiGateway

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["ag-ui"])
_ENCODER = EventEncoder()


@router.get("/tasks/{task_id:id}/agui", summary="The task's runs as an AG-UI event stream")
async def watch_agui(
    task_id: TaskId,
    request: Request,
    last_event_id: LastEventId = None,
    until: Annotated[
        Literal["run_end"] | None,
        Query(description="run_end: end the body after the current (or next) run's end."),
    ] = None,
) -> StreamingResponse:
    services: Services = request.app.state.services
    watch = services.agui_watch
    since = last_event_id_cursor(last_event_id)
    view = await watch.prepare(task_id, since)  # 404 before anything is streamed
    body = watch.stream(
        task_id,
        view,
        prelude=since is None,
        until_run_end=until is not None,
        user_agent=request.headers.get("user-agent"),
    )
    return StreamingResponse(
        body,
        media_type=watch.media_type,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/agui",
    summary="Run an AG-UI request (RunAgentInput in, AG-UI SSE out)",
    response_class=StreamingResponse,
)
async def run_agui(request: Request, actor: ActorDep) -> StreamingResponse:
    gateway: AguiGateway = request.app.state.services.agui
    prepared = await gateway.prepare(await request.body(), actor=actor)  # 4xx before streaming

    async def body() -> AsyncIterator[str]:
        async for event in gateway.run(prepared):
            yield sse_frame(event)

    return StreamingResponse(
        body(),
        media_type=_ENCODER.get_content_type(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
