"""Server-Sent Events: ``GET /api/v1/tasks/{task_id:id}/stream``, the same events as the
WebSocket, for curl, EventSource and proxies that block WebSocket.

Each event is ``id: <seq>``, ``event: <event_type>``, ``data: <envelope JSON>``. Resume with
the ``Last-Event-ID`` header (EventSource sends it on reconnect) or ``?since=``. Comment
lines (``: heartbeat``) keep idle connections open. A reader slower than the events is fed
from the log at its own pace; one that takes nothing for the server's write timeout is ended.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from taskline.api.cursors import MAX_SEQ, LastEventId, last_event_id_cursor
from taskline.api.paths import TaskId
from taskline.domain.events import WebSocketMessage
from taskline.realtime import ConnectionManager

__all__ = ["router", "sse_record"]

router = APIRouter(prefix="/api/v1", tags=["events"])


def sse_record(message: WebSocketMessage | None, frame: str) -> str:
    """Format one envelope as an SSE record (connection messages carry no ``id:``)."""
    if message is None:
        return f"data: {frame}\n\n"
    if message.seq is None:
        return f"event: {message.event_type.value}\ndata: {frame}\n\n"
    return f"id: {message.seq}\nevent: {message.event_type.value}\ndata: {frame}\n\n"


@router.get("/tasks/{task_id:id}/stream", summary="A task's events as Server-Sent Events")
async def stream_task(
    task_id: TaskId,
    request: Request,
    since: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    manager: ConnectionManager = request.app.state.connections
    cursor = last_event_id_cursor(last_event_id)
    client = request.client
    following = manager.follow(
        task_id,
        since=cursor if cursor is not None else since,
        user_agent=request.headers.get("user-agent"),
        remote_address=f"{client.host}:{client.port}" if client else None,
    )
    follower = await following.__aenter__()  # 404 / 422 before the stream starts
    interval = manager.heartbeat_interval

    async def body() -> AsyncIterator[str]:
        try:
            while True:
                try:
                    item = await follower.receive(timeout=interval)
                except StopAsyncIteration:
                    return
                yield ": heartbeat\n\n" if item is None else sse_record(*item)
        finally:
            await following.__aexit__(None, None, None)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
