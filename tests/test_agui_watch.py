"""GET /api/v1/tasks/{id}/agui: AG-UI SSE for viewers, joined mid-run, resumable."""

import json
import threading
from typing import Any

import httpx
from ag_ui.core import Event
from pydantic import TypeAdapter

from tests.support.server import LiveServer
from tests.support.waiting import wait_until

EVENTS: TypeAdapter[Any] = TypeAdapter(Event)


def publish(client: httpx.Client, task_id: str, events: list[dict[str, Any]]) -> int:
    response = client.post(f"/api/v1/tasks/{task_id}/events", json=events)
    assert response.status_code == 200, response.text
    last: int = response.json()["last_seq"]
    return last


def read_agui(
    server: LiveServer, task_id: str, count: int, headers: dict[str, str] | None = None
) -> list[tuple[str | None, dict[str, Any]]]:
    """Read ``count`` AG-UI frames: (id line, parsed data), checking the framing."""
    frames: list[tuple[str | None, dict[str, Any]]] = []
    buffer = ""
    with (
        httpx.Client(base_url=server.url, timeout=10) as http,
        http.stream("GET", f"/api/v1/tasks/{task_id}/agui", headers=headers or {}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_text():
            buffer += chunk
            assert "\r" not in buffer  # LF-only framing
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                lines = [line for line in block.split("\n") if not line.startswith(":")]
                if not lines:
                    continue
                fields = dict(line.split(": ", 1) for line in lines)
                data = json.loads(fields["data"])
                EVENTS.validate_python(data)  # every frame is a valid AG-UI event
                assert isinstance(data.get("timestamp", 0), int)
                assert "_" not in "".join(data)  # camelCase keys
                frames.append((fields.get("id"), data))
                if len(frames) == count:
                    return frames
    raise AssertionError(f"stream ended after {len(frames)} frames")


def test_joining_mid_run_gives_a_prelude_then_live_events(
    server: LiveServer, client: httpx.Client
) -> None:
    """A viewer joining with an open message and an open tool call gets RUN_STARTED,
    snapshots, the re-opened message and call, then live events to RUN_FINISHED."""
    task_id = client.post("/api/v1/tasks/", json={"title": "run"}).json()["id"]
    publish(client, task_id, [{"event_type": "progress_update", "data": {"progress": 0.1}}])
    last = publish(
        client,
        task_id,
        [
            {"event_type": "task_started", "run_id": "run_1"},
            {"event_type": "state.snapshot", "data": {"snapshot": {"n": 1}}},
            {"event_type": "message.start", "data": {"message_id": "m0"}},
            {"event_type": "message.delta", "data": {"message_id": "m0", "delta": "Done."}},
            {"event_type": "message.end", "data": {"message_id": "m0"}},
            {"event_type": "message.start", "data": {"message_id": "m1"}},
            {"event_type": "message.delta", "data": {"message_id": "m1", "delta": "Hel"}},
            {"event_type": "tool_call.start", "data": {"tool_call_id": "c1", "name": "grep"}},
            {"event_type": "tool_call.args", "data": {"tool_call_id": "c1", "delta": '{"q":'}},
        ],
    )
    frames: list[tuple[str | None, dict[str, Any]]] = []
    reader = threading.Thread(target=lambda: frames.extend(read_agui(server, task_id, 13)))
    reader.start()
    wait_until(
        lambda: client.get("/api/v1/websocket/status").json()["connections_per_task"],
        message="the AG-UI reader to be connected",
    )
    publish(
        client,
        task_id,
        [
            {"event_type": "message.delta", "data": {"message_id": "m1", "delta": "lo"}},
            {"event_type": "message.end", "data": {"message_id": "m1"}},
            {"event_type": "tool_call.args", "data": {"tool_call_id": "c1", "delta": '"x"}'}},
            {"event_type": "tool_call.end", "data": {"tool_call_id": "c1", "result": "3"}},
            {"event_type": "task_completed", "data": {"result": "ok"}},
        ],
    )
    reader.join(20)
    types = [data["type"] for _, data in frames]
    assert types == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "MESSAGES_SNAPSHOT",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "RUN_FINISHED",
    ]
    assert frames[0][1]["runId"] == "run_1" and frames[0][1]["threadId"] == task_id
    assert frames[1][1]["snapshot"] == {"n": 1}
    assert frames[2][1]["messages"] == [{"id": "m0", "role": "assistant", "content": "Done."}]
    assert frames[4][1]["delta"] == "Hel" and frames[6][1]["delta"] == '{"q":'
    assert frames[0][0] == str(last)
    assert [int(i) for i, _ in frames[7:]] == [
        last + 1,
        last + 2,
        last + 3,
        last + 4,
        last + 4,
        last + 5,
    ]


def test_last_event_id_resumes_without_a_prelude(server: LiveServer, client: httpx.Client) -> None:
    """Reconnecting with Last-Event-ID continues after that seq, with no new prelude."""
    task_id = client.post("/api/v1/tasks/", json={"title": "run"}).json()["id"]
    last = publish(
        client,
        task_id,
        [
            {"event_type": "task_started"},
            {"event_type": "step.start", "data": {"name": "a"}},
            {"event_type": "step.end", "data": {"name": "a"}},
            {"event_type": "task_completed"},
        ],
    )
    frames = read_agui(server, task_id, 2, headers={"Last-Event-ID": str(last - 2)})
    assert [data["type"] for _, data in frames] == ["STEP_FINISHED", "RUN_FINISHED"]
    assert client.get("/api/v1/tasks/task_none/agui").status_code == 404
