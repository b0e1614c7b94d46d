"""Taskline ⇄ AG-UI translation with the official ag_ui.core models."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ag_ui.core import BaseEvent

from taskline.agui import from_agui, to_agui
from taskline.domain.errors import InvalidInputError
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage

AGUI_SEQUENCE: list[dict[str, Any]] = [
    {"type": "RUN_STARTED", "threadId": "task_a", "runId": "run_1", "protocolVersion": "1.0"},
    {"type": "STEP_STARTED", "stepName": "plan"},
    {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
    {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Hello "},
    {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "world"},
    {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
    {
        "type": "TOOL_CALL_START",
        "toolCallId": "c1",
        "toolCallName": "search",
        "parentMessageId": "m1",
    },
    {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"q":'},
    {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '"x"}'},
    {"type": "TOOL_CALL_END", "toolCallId": "c1"},
    {
        "type": "TOOL_CALL_RESULT",
        "messageId": "t1",
        "toolCallId": "c1",
        "content": "3 hits",
        "role": "tool",
    },
    {"type": "STATE_SNAPSHOT", "snapshot": {"files": []}},
    {"type": "STATE_DELTA", "delta": [{"op": "add", "path": "/files/-", "value": "a.md"}]},
    {"type": "REASONING_START", "messageId": "r1"},
    {"type": "REASONING_MESSAGE_START", "messageId": "r1m", "role": "reasoning"},
    {"type": "REASONING_MESSAGE_CONTENT", "messageId": "r1m", "delta": "think"},
    {"type": "REASONING_MESSAGE_END", "messageId": "r1m"},
    {"type": "REASONING_END", "messageId": "r1"},
    {
        "type": "ACTIVITY_SNAPSHOT",
        "messageId": "a1",
        "activityType": "plan",
        "content": {"steps": 2},
    },
    {"type": "RAW", "event": {"anything": [1, 2]}, "source": "upstream"},
    {"type": "CUSTOM", "name": "progress_update", "value": {"progress": 0.5}},
    {"type": "CUSTOM", "name": "vendor.thing", "value": None},
    {"type": "STEP_FINISHED", "stepName": "plan"},
    {"type": "RUN_FINISHED", "threadId": "task_a", "runId": "run_1", "result": {"ok": True}},
]


def stored(event: EventIn, seq: int) -> WebSocketMessage:
    """What the log gives back for an ingested event (ids and times assigned)."""
    return WebSocketMessage(
        id=f"evt_{seq}",
        seq=seq,
        task_id="task_a",
        event_type=event.event_type,
        data=event.data,
        timestamp=datetime(2026, 11, 25, 21, 0, seq, tzinfo=UTC),
    )


def wire(events: list[BaseEvent]) -> list[dict[str, Any]]:
    dumped = [json.loads(e.model_dump_json(by_alias=True)) for e in events]  # as the encoder
    for item in dumped:
        assert isinstance(item.pop("timestamp"), int)
    return dumped


def test_an_agui_sequence_round_trips_unchanged_apart_from_timestamps() -> None:
    """Ingested, stored and emitted again, every AG-UI event is as it came."""
    out: list[BaseEvent] = []
    for seq, raw in enumerate(AGUI_SEQUENCE, start=1):
        out.extend(to_agui(stored(from_agui(raw), seq)))
    assert wire(out) == AGUI_SEQUENCE


def test_agui_events_map_onto_taskline_types() -> None:
    """The table of the translate module, AG-UI → Taskline."""
    kinds = [from_agui(raw).event_type.value for raw in AGUI_SEQUENCE]
    assert kinds[:13] == [
        "task_started",
        "step.start",
        "message.start",
        "message.delta",
        "message.delta",
        "message.end",
        "tool_call.start",
        "tool_call.args",
        "tool_call.args",
        "tool_call.end",
        "tool_call.result",
        "state.snapshot",
        "state.patch",
    ]
    assert kinds[13:20] == ["custom"] * 7  # AG-UI-only events are kept as custom
    assert kinds[20:] == ["progress_update", "custom", "step.end", "task_completed"]
    assert from_agui(AGUI_SEQUENCE[20]).data["progress"] == 0.5


def test_native_taskline_events_become_valid_agui() -> None:
    """Taskline events translate to AG-UI events the official models accept."""
    native = [
        (WebSocketEventType.TASK_STARTED, {}),
        (
            WebSocketEventType.TOOL_CALL_START,
            {"tool_call_id": "c", "name": "read", "args": {"p": 1}},
        ),
        (WebSocketEventType.TOOL_CALL_END, {"tool_call_id": "c", "result": {"n": 2}}),
        (WebSocketEventType.PROGRESS_UPDATE, {"progress": 0.25}),
        (WebSocketEventType.TASK_FAILED, {"error": "disk full"}),
    ]
    out = []
    for seq, (kind, data) in enumerate(native, start=1):
        message = stored(EventIn(event_type=kind, data=data), seq)
        out.extend(wire(to_agui(message.model_copy(update={"run_id": "run_9"}))))
    assert [e["type"] for e in out] == [
        "RUN_STARTED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "CUSTOM",
        "RUN_ERROR",
    ]
    assert out[0] == {
        "type": "RUN_STARTED",
        "threadId": "task_a",
        "runId": "run_9",
        "protocolVersion": "1.0",
    }
    assert out[2]["delta"] == '{"p":1}'
    assert out[5] == {"type": "CUSTOM", "name": "progress_update", "value": {"progress": 0.25}}
    assert out[6]["message"] == "disk full"


def test_invalid_agui_event_names_the_field() -> None:
    """The official models refuse a bad event; the error names the camelCase field."""
    with pytest.raises(InvalidInputError) as refused:
        from_agui({"type": "TEXT_MESSAGE_CONTENT", "delta": "x"}, field="events.0")
    assert refused.value.field == "events.0.messageId"
    with pytest.raises(InvalidInputError):
        from_agui({"type": "NOT_A_TYPE"})


def test_agui_events_published_to_the_server_round_trip(client: Any) -> None:
    """POST ?format=agui stores AG-UI events; read back and translated, they are unchanged."""
    task_id = client.post("/api/v1/tasks/", json={"title": "agui"}).json()["id"]
    sequence = [{**raw, "threadId": task_id} if "threadId" in raw else raw for raw in AGUI_SEQUENCE]
    response = client.post(
        f"/api/v1/tasks/{task_id}/events", params={"format": "agui"}, json={"events": sequence}
    )
    assert response.status_code == 200, response.text
    log = client.get(f"/api/v1/tasks/{task_id}/events", params={"since": 1}).json()["events"]
    out = [e for message in log for e in to_agui(WebSocketMessage.model_validate(message))]
    assert wire(out) == sequence
    task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed" and task["result"] == {"ok": True}
    assert client.get(f"/api/v1/tasks/{task_id}/state").json()["state"] == {"files": ["a.md"]}
    bad = client.post(
        f"/api/v1/tasks/{task_id}/events",
        params={"format": "agui"},
        json=[{"type": "TOOL_CALL_START", "toolCallId": "x"}],
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "events.0.toolCallName"
