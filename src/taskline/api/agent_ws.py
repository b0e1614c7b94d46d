"""``WS /ws/agents/{agent_id}``: an agent's connection (docs/agent-protocol.md).

This moves frames; what they mean is :class:`~taskline.service.agent_session.AgentSession`'s.
Frames faster than the frame limit (:func:`~taskline.api.throttle.frame_limit`) get an
``error`` frame with code ``rate_limited`` and a close with 4429.
"""

import time

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from taskline.api.doors import actor_of
from taskline.api.limits import TokenBucket
from taskline.api.throttle import frame_limit, too_many_frames
from taskline.api.ws import client_text
from taskline.domain.errors import (
    ForbiddenError,
    InvalidInputError,
    NotAuthenticatedError,
    StorageError,
)
from taskline.domain.ids import ID_PATTERN
from taskline.realtime import CloseCode
from taskline.service import Services
from taskline.service.agent_session import AgentSession

__all__ = ["router"]

router = APIRouter()


@router.websocket("/ws/agents/{agent_id}")
async def agent_socket(websocket: WebSocket, agent_id: str) -> None:
    services: Services = websocket.app.state.services
    max_bytes: int = websocket.app.state.settings.max_body_bytes
    await websocket.accept()
    if not ID_PATTERN.match(agent_id) or not agent_id.startswith("agent_"):
        await websocket.close(1008, "agent id must look like agent_abc123")
        return

    async def close(code: int, reason: str) -> None:
        if websocket.application_state != WebSocketState.DISCONNECTED:
            await websocket.close(code, reason)

    try:
        session = AgentSession(
            services.hub, services.events, agent_id, connected_by=actor_of(websocket.scope)
        )
    except (NotAuthenticatedError, ForbiddenError) as exc:
        code = (
            CloseCode.UNAUTHENTICATED
            if isinstance(exc, NotAuthenticatedError)
            else CloseCode.FORBIDDEN
        )
        await websocket.close(code, exc.detail[:120])
        return
    params = websocket.query_params
    frames = frame_limit(websocket.app.state.settings)
    try:
        await session.open(
            websocket.send_text, close, name=params.get("name"), kind=params.get("kind")
        )
    except InvalidInputError as exc:  # ?name= or ?kind= no agent could have
        await websocket.close(1008, exc.detail)
        return
    except StorageError:
        # Registering the agent failed: say so as the receive loop does. Left to FastAPI, the
        # error reached an HTTP error handler that cannot answer a WebSocket (a traceback).
        await websocket.close(1011, "storage unavailable; reconnect later")
        return
    except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        # The agent left while being welcomed: forget it quietly (it will reconnect).
        await session.close(1001, "connection lost during welcome")
        return
    bucket = None if frames is None else TokenBucket(frames, time.monotonic())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text, size = client_text(message)
            if size > max_bytes:
                await session.close(1009, f"frames are limited to {max_bytes} bytes")
                return
            if bucket is not None and bucket.take(time.monotonic()):
                error, reason = too_many_frames(bucket.rate, f"agent {agent_id}")
                await websocket.send_text(orjson.dumps({"type": "error", **error}).decode())
                await session.close(CloseCode.TOO_MANY_MESSAGES, reason)
                await close(CloseCode.TOO_MANY_MESSAGES, reason)
                return
            await session.receive(text)
    except WebSocketDisconnect:
        pass
    except StorageError:
        await session.close(1011, "storage unavailable; resend after reconnecting")
        return
    await session.close(1000, "agent left")
