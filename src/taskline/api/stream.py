"""Server-Sent Events: ``GET /api/v1/tasks/{task_id}/stream``, the same events as the
WebSocket, for curl, EventSource and proxies that block WebSocket.

Each event is ``id: <seq>``, ``event: <event_type>``, ``data: <envelope JSON>``. Resume with
the ``Last-Event-ID`` header (EventSource sends it on reconnect) or ``?since=``. Comment
lines (``: heartbeat``) keep idle connections open.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from taskline.api.deps import DatabaseDep
from taskline.domain.errors import InvalidInputError, NotFoundError
from taskline.domain.events import WebSocketMessage
from taskline.realtime import CloseCode, ConnectionManager
from taskline.store.tasks import TaskStore

__all__ = ["router", "sse_record"]

router = APIRouter(prefix="/api/v1", tags=["events"])


def sse_record(message: WebSocketMessage | None, frame: str) -> str:
    """Format one envelope as an SSE record (connection messages carry no ``id:``)."""
    if message is None:
        return f"data: {frame}\n\n"
    if message.seq is None:
        return f"event: {message.event_type.value}\ndata: {frame}\n\n"
    return f"id: {message.seq}\nevent: {message.event_type.value}\ndata: {frame}\n\n"


@router.get("/tasks/{task_id}/stream", summary="A task's events as Server-Sent Events")
async def stream_task(
    task_id: str,
    request: Request,
    database: DatabaseDep,
    since: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    manager: ConnectionManager = request.app.state.connections
    if last_event_id:
        try:
            since = int(last_event_id)
        except ValueError:
            raise InvalidInputError(
                "Last-Event-ID must be a seq (integer)", field="Last-Event-ID"
            ) from None
    async with database.read() as session:
        await TaskStore(session).get(task_id)  # 404 before the stream starts
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    closed = asyncio.Event()

    async def sender(text: str) -> None:
        # returns once the response has taken the frame: the manager's outbox (bounded in
        # bytes) is what waits for a slow reader, not this queue
        await queue.put(text)
        await queue.join()

    async def closer(code: int, reason: str) -> None:
        closed.set()
        queue.put_nowait(None)

    client = request.client
    subscriber = await manager.attach(
        sender,
        closer,
        task_id,
        since=since,
        user_agent=request.headers.get("user-agent"),
        remote_address=f"{client.host}:{client.port}" if client else None,
        formatter=sse_record,
    )
    if subscriber is None:
        raise NotFoundError("task", task_id)
    client_id = subscriber.client_id
    interval = manager.heartbeat_interval

    async def body() -> AsyncIterator[str]:
        try:
            while not closed.is_set():
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=interval)
                except TimeoutError:
                    manager.touch(client_id)
                    yield ": heartbeat\n\n"
                    continue
                try:
                    if item is None:
                        return
                    manager.touch(client_id)  # SSE clients cannot talk back; being read counts
                    yield item
                finally:
                    queue.task_done()
        finally:
            await manager.disconnect(client_id, CloseCode.NORMAL, "stream ended")

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
