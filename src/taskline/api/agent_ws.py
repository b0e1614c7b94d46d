"""``WS /ws/agents/{agent_id}``: an agent's connection (docs/agent-protocol.md)."""

from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from taskline.api.events import MAX_BATCH
from taskline.api.problems import problem_body
from taskline.domain.errors import InvalidInputError, StorageError, TasklineError
from taskline.domain.events import EventIn
from taskline.domain.ids import ID_PATTERN
from taskline.domain.models import utc_now
from taskline.realtime.agents import AgentHub
from taskline.realtime.ingest import Ingest

__all__ = ["router"]

router = APIRouter()


@router.websocket("/ws/agents/{agent_id}")
async def agent_socket(websocket: WebSocket, agent_id: str) -> None:
    hub: AgentHub = websocket.app.state.agents
    ingest: Ingest = websocket.app.state.ingest
    max_bytes: int = websocket.app.state.settings.max_body_bytes
    await websocket.accept()
    if not ID_PATTERN.match(agent_id) or not agent_id.startswith("agent_"):
        await websocket.close(1008, "agent id must look like agent_abc123")
        return

    async def close(code: int, reason: str) -> None:
        if websocket.application_state != WebSocketState.DISCONNECTED:
            await websocket.close(code, reason)

    params = websocket.query_params
    try:
        await hub.connect(
            agent_id, websocket.send_text, close, name=params.get("name"), kind=params.get("kind")
        )
    except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        # The agent left while being welcomed: forget it quietly (it will reconnect).
        await hub.disconnect(agent_id, 1001, "connection lost during welcome")
        return
    reason = "agent left"
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            hub.touch(agent_id)
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(text) > max_bytes and len(text.encode()) > max_bytes:
                await hub.disconnect(agent_id, 1009, f"frames are limited to {max_bytes} bytes")
                return
            await _handle(hub, ingest, agent_id, text)
    except WebSocketDisconnect:
        pass
    except StorageError:
        reason = "storage unavailable"
        await hub.disconnect(agent_id, 1011, "storage unavailable; resend after reconnecting")
        return
    await hub.disconnect(agent_id, 1000, reason)


async def _handle(hub: AgentHub, ingest: Ingest, agent_id: str, text: str) -> None:
    try:
        frame: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        await hub.reply(agent_id, {"type": "error", "code": "invalid_json", "message": "not JSON"})
        return
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "heartbeat":
        await hub.reply(agent_id, {"type": "heartbeat", "server_time": utc_now().isoformat()})
    elif kind == "ping":
        pong: dict[str, Any] = {"type": "pong", "server_time": utc_now().isoformat()}
        if "timestamp" in frame:
            pong["client_timestamp"] = frame["timestamp"]
        await hub.reply(agent_id, pong)
    elif kind == "publish":
        await _publish(hub, ingest, agent_id, frame)
    else:
        await hub.reply(
            agent_id,
            {
                "type": "error",
                "code": "unknown_type",
                "message": f"unknown message type {kind!r}; send publish, heartbeat or ping",
            },
        )


async def _publish(hub: AgentHub, ingest: Ingest, agent_id: str, frame: dict[str, Any]) -> None:
    batch_id = frame.get("batch_id")
    task_id = frame.get("task_id")
    try:
        if not isinstance(task_id, str):
            raise InvalidInputError("task_id: required", field="task_id")
        raw = frame.get("events")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_BATCH:
            raise InvalidInputError(
                f"events: send a list of 1 to {MAX_BATCH} events", field="events"
            )
        events = []
        for index, item in enumerate(raw):
            try:
                event = EventIn.model_validate(item)
            except ValidationError as exc:
                first = exc.errors()[0]
                path = ".".join(str(p) for p in ("events", index, *first["loc"]))
                raise InvalidInputError(f"{path}: {first['msg']}", field=path) from None
            if event.agent_id is None:
                event = event.model_copy(update={"agent_id": agent_id})
            events.append(event)
        committed = await ingest.publish(task_id, events, source=f"agent:{agent_id}")
    except StorageError:
        raise
    except TasklineError as exc:
        body = problem_body(exc)
        await hub.reply(
            agent_id,
            {
                "type": "nack",
                "batch_id": batch_id,
                "task_id": task_id,
                "status": body["status"],
                "error": body,
            },
        )
        return
    seqs = [m.seq for m in committed]
    await hub.reply(
        agent_id,
        {
            "type": "ack",
            "batch_id": batch_id,
            "task_id": task_id,
            "seqs": seqs,
            "last_seq": max(s or 0 for s in seqs),
        },
    )
