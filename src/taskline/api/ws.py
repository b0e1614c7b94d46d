"""WebSocket endpoints: ``/ws/tasks/{task_id}`` (one task's events) and ``/ws/board``.

Query parameters: ``client_id`` (keep it to get queued personal messages on return),
``since`` (replay events after this seq), ``epoch`` (the log epoch ``since`` came from),
``batch=1`` (receive every frame as a JSON array of envelopes; busy streams cost fewer frames).

Client frames: ``{"type": "heartbeat"}`` and ``{"type": "ping"}`` are answered with a
``heartbeat`` event; anything else gets an ``error`` event and the connection stays open.
A frame over ``ws_max_message_bytes`` closes the connection with 1009.
"""

from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from taskline.domain.events import WebSocketEventType
from taskline.domain.models import utc_now
from taskline.realtime import CloseCode, ConnectionManager

__all__ = ["router"]

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


async def _serve(websocket: WebSocket, task_id: str | None) -> None:
    manager: ConnectionManager = websocket.app.state.connections
    max_bytes: int = websocket.app.state.settings.ws_max_message_bytes
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
            manager.touch(client_id)
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                text = raw.decode("utf-8", "replace")
            if len(text.encode()) > max_bytes:
                await manager.disconnect(
                    client_id, CloseCode.MESSAGE_TOO_BIG, f"frames are limited to {max_bytes} bytes"
                )
                return
            _answer(manager, client_id, text)
    except WebSocketDisconnect:
        pass
    finally:
        await manager.disconnect(client_id, CloseCode.NORMAL, "client left")


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
        manager.reply(client_id, E.HEARTBEAT, {"pong": True, "server_time": utc_now().isoformat()})
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
    await _serve(websocket, task_id)


@router.websocket("/ws/board")
async def board_socket(websocket: WebSocket) -> None:
    """Task-level changes across all tasks (created, updated, deleted, progress, status)."""
    await _serve(websocket, None)
