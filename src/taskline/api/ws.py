"""WebSocket endpoints: ``/ws/tasks/{task_id}`` (one task's events) and ``/ws/board``.

Query parameters: ``client_id`` (keep it to get queued personal messages on return),
``since`` (replay events after this seq), ``epoch`` (the log epoch ``since`` came from),
``batch=1`` (receive every frame as a JSON array of envelopes; busy streams cost fewer frames).

Client frames: ``{"type": "heartbeat"}`` is answered with a ``heartbeat`` event and
``{"type": "ping"}`` with a ``pong`` event (both carry ``server_time``; a ``timestamp`` sent
with the ping comes back as ``client_timestamp``, to measure round trips); anything else gets
an ``error`` event and the connection stays open.
A frame over ``ws_max_message_bytes`` closes the connection with 1009; frames faster than
``limit_ws_frame_rate`` (bursts of ``limit_ws_frame_burst``) get an ``error`` event with code
``rate_limited`` and a close with 4429.

:class:`WebSocketFastLane` serves the same two endpoints ahead of the HTTP middleware stack:
a stream lives for hours, and every middleware layer it passed through would stay on its stack
(and in memory) for as long. The routes below remain for servers run without the fast lane.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, FastAPI, WebSocket
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from taskline.api.doors import actor_of
from taskline.api.limits import TokenBucket
from taskline.api.throttle import frame_limit, too_many_frames
from taskline.domain.events import WebSocketEventType
from taskline.domain.models import utc_now
from taskline.realtime import CloseCode, ConnectionManager, SubscriberState
from taskline.realtime.channel import direct_channel

__all__ = ["WebSocketFastLane", "client_text", "router"]

router = APIRouter()

E = WebSocketEventType
_CLIENT_TYPES = ("heartbeat", "ping")
_TRUE = frozenset({"1", "true", "yes"})


def _cursor(params: dict[str, str]) -> int | None:
    raw = params.get("since")
    if not raw:
        return None
    value = int(raw)
    if value < 0:
        raise ValueError("since must be >= 0")
    return value


def client_text(message: Message) -> tuple[str, int]:
    """A client message's text (a binary one decoded, bad bytes replaced) and its size in
    bytes as received: what the frame limits count.

    The size is counted in bytes, not characters: a text of 40,000 "é" is 80,000 bytes.
    ASCII text (nearly every frame) is as long in characters as in bytes, so only other text
    is encoded to measure it.
    """
    text: str | None = message.get("text")
    if text is not None:
        return text, len(text) if text.isascii() else len(text.encode())
    data: bytes = message.get("bytes") or b""
    return data.decode("utf-8", "replace"), len(data)


def _sender(send: Send) -> Callable[[str], Awaitable[None]]:
    """Writes one text frame (for a connection without a direct channel: a writer task)."""

    async def sender(text: str) -> None:
        await send({"type": "websocket.send", "text": text})

    return sender


def _user_agent(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"user-agent":
            return str(value.decode("latin-1"))
    return None


async def _serve(
    scope: Scope, receive: Receive, send: Send, task_id: str | None, app: FastAPI
) -> None:
    """One task or board stream over plain ASGI (no request wrapper per connection)."""
    manager: ConnectionManager = app.state.connections
    max_bytes: int = app.state.settings.ws_max_message_bytes
    frames = frame_limit(app.state.settings)
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    try:
        since = _cursor(params)
    except ValueError as exc:
        error = {"event_type": "error", "data": {"code": "bad_query", "message": str(exc)}}
        await send({"type": "websocket.send", "text": orjson.dumps(error).decode()})
        await send(
            {
                "type": "websocket.close",
                "code": 1008,
                "reason": "since must be a non-negative integer",
            }
        )
        return
    gone = False  # the client's side is closed: nothing more is sent
    channel = direct_channel(scope)
    client = scope.get("client")
    user_agent = _user_agent(scope)
    owner = str(actor_of(scope))
    # a stream lives for hours: its request headers are not kept that long
    scope["headers"] = ()

    async def closer(code: int, reason: str) -> None:
        if not gone:
            await send({"type": "websocket.close", "code": code, "reason": reason})

    subscriber = await manager.attach(
        _sender(send) if channel is None else None,
        closer,
        task_id,
        params.get("client_id") or None,
        since=since,
        epoch=params.get("epoch") or None,
        batch=params.get("batch") in _TRUE,
        user_agent=user_agent,
        remote_address=f"{client[0]}:{client[1]}" if client else None,
        channel=channel,
        owner=owner,
    )
    if subscriber is None:
        return
    client_id = subscriber.client_id
    bucket: TokenBucket | None = None  # made at the first frame: most viewers send few
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                gone = True
                break
            now = subscriber.last_seen = time.monotonic()
            text, size = client_text(message)
            if size > max_bytes:
                await manager.disconnect(
                    client_id,
                    CloseCode.MESSAGE_TOO_BIG,
                    f"frames are limited to {max_bytes} bytes",
                    subscriber=subscriber,
                )
                return
            if subscriber.state == SubscriberState.CLOSED:
                break  # replaced by a newer connection, or cut: nothing more to answer
            if frames is not None:
                if bucket is None:
                    bucket = TokenBucket(frames, now)
                if bucket.take(now):
                    flood, reason = too_many_frames(frames, scope.get("path", ""))
                    manager.reply(client_id, E.ERROR, flood)  # goes out before the close
                    await manager.disconnect(
                        client_id, CloseCode.TOO_MANY_MESSAGES, reason, subscriber=subscriber
                    )
                    return
            _answer(manager, client_id, text)
    except (OSError, WebSocketDisconnect):
        gone = True  # the server's protocol says the client is gone
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
    await _serve(websocket.scope, websocket.receive, websocket.send, task_id, websocket.app)


@router.websocket("/ws/board")
async def board_socket(websocket: WebSocket) -> None:
    """Task-level changes across all tasks (created, updated, deleted, progress, status)."""
    await _serve(websocket.scope, websocket.receive, websocket.send, None, websocket.app)


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
                await _serve(scope, receive, send, None, self.app)
                return
            task_id = path[len(_TASK_PREFIX) :]
            if path.startswith(_TASK_PREFIX) and task_id and "/" not in task_id:
                await _serve(scope, receive, send, task_id, self.app)
                return
        await self.app(scope, receive, send)
