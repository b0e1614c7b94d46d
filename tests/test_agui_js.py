"""The official AG-UI JavaScript client (@ag-ui/client 1.0.x, pinned in tests/agui_js) against
Taskline: a run on POST /api/v1/agui, and the watch stream joined in the middle of a run.

Needs Node.js and npm (``npm ci`` installs the locked packages into tests/agui_js/node_modules
on first use). Missing: skipped, or failed when TASKLINE_REQUIRE_SERVICES=1.
"""

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskline.service.agui_gateway import task_id_for_thread
from taskline.settings import Settings
from tests.support.node import locked_node
from tests.support.rest import publish
from tests.support.server import LiveServer

JS_DIR = Path(__file__).parent / "agui_js"
SCRIPT = JS_DIR / "run_agent.mjs"


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the locked client installed."""
    return locked_node(JS_DIR, JS_DIR / "node_modules" / "@ag-ui" / "client")


def run_node(node: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(SCRIPT), *args], cwd=JS_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    output: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return output


def assert_clean(output: dict[str, Any]) -> None:
    """No verification error, no schema/protocol warning, runAgent resolved."""
    assert output["failure"] is None, output
    assert output["errors"] == [], output["errors"]
    assert output["warnings"] == [], output["warnings"]


@pytest.fixture
def review_server(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A running server whose built-in agent may review ``tmp_path``."""
    server = LiveServer(Settings(database_url=sqlite_url, review_roots=(str(tmp_path),)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_js_client_runs_the_builtin_agent(
    node: str, review_server: LiveServer, tmp_path: Path
) -> None:
    """HttpAgent.runAgent against POST /api/v1/agui, the built-in agent reviewing a folder
    under its review roots: no verifier error, no warning, and the client's state equals the
    task's state."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text("# Guide\n\nTODO: explain [setup](missing.md).\n")
    (root / "notes.txt").write_text("FIXME: tidy up\nsecond line\n")
    (root / "data.bin").write_bytes(b"\x00\x01\x02")
    thread = str(uuid.uuid4())
    output = run_node(node, "run", f"{review_server.url}/api/v1/agui", thread, str(root))
    assert_clean(output)
    assert output["events"][0] == "RUN_STARTED" and output["events"][-1] == "RUN_FINISHED"
    assert "TOOL_CALL_RESULT" in output["events"] and "STATE_DELTA" in output["events"]
    task_id = task_id_for_thread(thread)
    with httpx.Client(base_url=review_server.url) as http:
        state = http.get(f"/api/v1/tasks/{task_id}/state").json()["state"]
        task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert output["state"] == state
    assert task["status"] == "completed"
    assert output["last"]["result"] == task["result"]
    roles = [m["role"] for m in output["messages"]]
    assert roles[0] == "user" and "assistant" in roles and "tool" in roles


def test_js_client_joins_the_watch_stream_mid_run(node: str, sqlite_server: LiveServer) -> None:
    """GET /api/v1/tasks/{id}/agui?until=run_end joined with an open text message and an open
    tool call: the client accepts the prelude and the live rest, and the body ends."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "watched"}).json()["id"]
    publish(
        http,
        task_id,
        {"event_type": "task_started", "run_id": "run_watch1"},
        {"event_type": "state.snapshot", "data": {"snapshot": {"files": []}}},
        {"event_type": "message.start", "data": {"message_id": "m0"}},
        {"event_type": "message.delta", "data": {"message_id": "m0", "delta": "Planned."}},
        {"event_type": "message.end", "data": {"message_id": "m0"}},
        {"event_type": "message.start", "data": {"message_id": "m1"}},
        {"event_type": "message.delta", "data": {"message_id": "m1", "delta": "Read"}},
        {
            "event_type": "tool_call.start",
            "data": {"tool_call_id": "c1", "name": "read_file", "parent_message_id": "m1"},
        },
        {"event_type": "tool_call.args", "data": {"tool_call_id": "c1", "delta": '{"pa'}},
    )
    outputs: list[dict[str, Any]] = []
    url = f"{sqlite_server.url}/api/v1/tasks/{task_id}/agui?until=run_end"
    reader = threading.Thread(target=lambda: outputs.append(run_node(node, "watch", url, task_id)))
    reader.start()
    deadline = time.monotonic() + 30
    while not http.get("/api/v1/websocket/status").json()["connections_per_task"]:
        assert time.monotonic() < deadline, "the JS client never connected"
        time.sleep(0.05)
    publish(
        http,
        task_id,
        {"event_type": "tool_call.args", "data": {"tool_call_id": "c1", "delta": 'th":"a"}'}},
        {"event_type": "tool_call.end", "data": {"tool_call_id": "c1", "result": "ok"}},
        {"event_type": "message.delta", "data": {"message_id": "m1", "delta": "ing a."}},
        {"event_type": "message.end", "data": {"message_id": "m1"}},
        {
            "event_type": "state.patch",
            "data": {"patch": [{"op": "add", "path": "/files/-", "value": "a"}]},
        },
        {"event_type": "task_completed", "data": {"result": "done"}},
    )
    reader.join(60)
    assert outputs, "the JS client did not finish (the body did not end)"
    output = outputs[0]
    assert_clean(output)
    assert output["events"][:3] == ["RUN_STARTED", "STATE_SNAPSHOT", "MESSAGES_SNAPSHOT"]
    assert output["events"][-1] == "RUN_FINISHED"
    assert output["state"] == http.get(f"/api/v1/tasks/{task_id}/state").json()["state"]
    texts = {m["id"]: m.get("content") for m in output["messages"]}
    assert texts["m0"] == "Planned." and texts["m1"] == "Reading a."
    calls = [c for m in output["messages"] for c in m.get("toolCalls") or []]
    assert calls[0]["function"]["arguments"] == '{"path":"a"}'
    http.close()


def test_js_client_runs_twice_on_one_thread(
    node: str, review_server: LiveServer, tmp_path: Path
) -> None:
    """One HttpAgent (one threadId), three runAgent() calls: a review, a second review that
    reopens the completed task, and a question about the report; every run is clean, and the
    task lists the two reviews as runs with the client's run ids."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text("# Guide\n\nTODO: explain.\n")
    thread = str(uuid.uuid4())
    url = f"{review_server.url}/api/v1/agui"
    output = run_node(node, "runs", url, thread, str(root), str(root), "How many TODO markers?")
    assert_clean(output)
    runs = output["runs"]
    assert [r["events"][0] for r in runs] == ["RUN_STARTED"] * 3
    assert [r["events"][-1] for r in runs] == ["RUN_FINISHED"] * 3
    assert [r["failure"] for r in runs] == [None] * 3
    assert len({r["runId"] for r in runs}) == 3
    assert "TODO" in runs[2]["result"]
    task_id = task_id_for_thread(thread)
    with httpx.Client(base_url=review_server.url) as http:
        listed = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"]) for r in listed] == [
        (runs[0]["runId"], "completed"),
        (runs[1]["runId"], "completed"),
    ]
    assert listed[1]["reopened_from"] == "completed"


def test_js_client_interrupt_then_resume(node: str, sqlite_url: str, tmp_path: Path) -> None:
    """The official client's interrupt round trip: the built-in agent asks before writing its
    report, so the first runAgent() ends with an interrupt outcome (agent.pendingInterrupts);
    runAgent({resume}) approving it continues the review to RUN_FINISHED; both runs clean."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text("# Guide\n\nTODO: explain.\n")
    settings = Settings(
        database_url=sqlite_url, review_roots=(str(tmp_path),), agent_approve=("write_report",)
    )
    server = LiveServer(settings)
    server.start()
    try:
        thread = str(uuid.uuid4())
        url = f"{server.url}/api/v1/agui"
        output = run_node(node, "interrupt", url, thread, str(root), '{"approved": true}')
        task_id = task_id_for_thread(thread)
        with httpx.Client(base_url=server.url) as http:
            task = http.get(f"/api/v1/tasks/{task_id}").json()
            runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    finally:
        server.stop()
    assert_clean(output)
    first, second = output["runs"]
    assert first["events"][-1] == "RUN_FINISHED" and first["outcome"]["type"] == "interrupt"
    (interrupt,) = first["outcome"]["interrupts"]
    assert second["resume"] == [
        {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
    ]
    assert second["events"][0] == "RUN_STARTED" and second["events"][-1] == "RUN_FINISHED"
    assert second["outcome"] is None and second["result"] == task["result"]
    assert task["status"] == "completed"
    assert [r["outcome"] for r in runs] == ["interrupted", "completed"]
