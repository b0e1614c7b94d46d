"""WebSocket endpoints: ``/ws/tasks/{task_id}`` (one task's events) and ``/ws/board``.

Query parameters: ``client_id`` (keep it to get queued personal messages on return),
``since`` (replay events after this seq), ``epoch`` (the log epoch ``since`` came from),
``batch=1`` (receive every frame as a JSON array of envelopes; busy streams cost fewer frames).

Client frames: ``{"type": "heartbeat"}`` is answered with a ``heartbeat`` event and
``{"type": "ping"}`` with a ``pong`` event (both carry ``server_time``; a ``timestamp`` sent
with the ping comes back as ``client_timestamp``, to measure round trips); anything else gets
an ``error`` event and the connection stays open.
A frame over ``ws_max_message_bytes`` closes the connection with 1009.

:class:`WebSocketFastLane` serves the same two endpoints ahead of the HTTP middleware stack:
a stream lives for hours, and every middleware layer it passed through would stay on its stack
(and in memory) for as long. The routes below remain for servers run without the fast lane.
"""

import time
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from starlette.types import Receive, Scope, Send

from taskline.domain.events import WebSocketEventType
from taskline.domain.models import utc_now
from taskline.realtime import CloseCode, ConnectionManager, SubscriberState

__all__ = ["WebSocketFastLane", "router"]

router = APIRouter()

E = WebSocketEventType
_CLIENT_TYPES = ("heartbeat", "ping")


def _query_int(websocket: WebSocket, name: str) -> int | None:
    raw = websocket.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = int(raw)
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return value


async def _serve(websocket: WebSocket, task_id: str | None, app: FastAPI) -> None:
    manager: ConnectionManager = app.state.connections
    max_bytes: int = app.state.settings.ws_max_message_bytes
    await websocket.accept()
    try:
        since = _query_int(websocket, "since")
    except ValueError as exc:
        await websocket.send_text(
            orjson.dumps(
                {"event_type": "error", "data": {"code": "bad_query", "message": str(exc)}}
            ).decode()
        )
        await websocket.close(1008, "since must be a non-negative integer")
        return

    subscriber = await manager.connect(
        websocket,
        task_id,
        websocket.query_params.get("client_id") or None,
        since=since,
        epoch=websocket.query_params.get("epoch") or None,
        batch=websocket.query_params.get("batch") in {"1", "true", "yes"},
    )
    if subscriber is None:
        return
    client_id = subscriber.client_id
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            subscriber.last_seen = time.monotonic()
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                text = raw.decode("utf-8", "replace")
            if len(text.encode()) > max_bytes:
                await manager.disconnect(
                    client_id,
                    CloseCode.MESSAGE_TOO_BIG,
                    f"frames are limited to {max_bytes} bytes",
                    subscriber=subscriber,
                )
                return
            if subscriber.state == SubscriberState.CLOSED:
                break  # replaced by a newer connection, or cut: nothing more to answer
            _answer(manager, client_id, text)
    except WebSocketDisconnect:
        pass
    finally:
        await manager.disconnect(client_id, CloseCode.NORMAL, "client left", subscriber=subscriber)


def _answer(manager: ConnectionManager, client_id: str, text: str) -> None:
    try:
        frame: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        manager.reply(client_id, E.ERROR, {"code": "invalid_json", "message": "not valid JSON"})
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "heartbeat":
        manager.reply(client_id, E.HEARTBEAT, {"server_time": utc_now().isoformat()})
    elif kind == "ping":
        pong: dict[str, Any] = {"server_time": utc_now().isoformat()}
        if "timestamp" in frame:
            pong["client_timestamp"] = frame["timestamp"]
        manager.reply(client_id, E.PONG, pong)
    else:
        manager.reply(
            client_id,
            E.ERROR,
            {
                "code": "unknown_type",
                "message": f"unknown message type {kind!r}; send one of: "
                + ", ".join(_CLIENT_TYPES),
            },
        )


@router.websocket("/ws/tasks/{task_id}")
async def task_socket(websocket: WebSocket, task_id: str) -> None:
    """Live events of one task, replayed from ``since`` first."""
    await _serve(websocket, task_id, websocket.app)


@router.websocket("/ws/board")
async def board_socket(websocket: WebSocket) -> None:
    """Task-level changes across all tasks (created, updated, deleted, progress, status)."""
    await _serve(websocket, None, websocket.app)


_TASK_PREFIX = "/ws/tasks/"


class WebSocketFastLane:
    """ASGI app: ``/ws/tasks/{task_id}`` and ``/ws/board`` WebSockets go straight to their
    handler; everything else (HTTP, lifespan, other WebSockets) goes to ``app``."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path: str = scope["path"][len(scope.get("root_path", "")) :]
            if path == "/ws/board":
                await _serve(WebSocket(scope, receive, send), None, self.app)
                return
            task_id = path[len(_TASK_PREFIX) :]
            if path.startswith(_TASK_PREFIX) and task_id and "/" not in task_id:
                await _serve(WebSocket(scope, receive, send), task_id, self.app)
                return
        await self.app(scope, receive, send)
