"""``taskline agent attach``: a remote AG-UI agent's run recorded into a task.

The remote agent is a real protocol peer: a small Starlette app, written here, that answers
a RunAgentInput with the official Python encoder, served by uvicorn on a free port.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    Interrupt,
    RunAgentInput,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from taskline.cli.main import taskline
from tests.support.agui import parse_sse
from tests.support.server import LiveServer, free_port

RECEIVED: list[RunAgentInput] = []


def script(run: RunAgentInput, *, finish: bool | str) -> list[BaseEvent]:
    """What the remote agent streams for ``run`` (with or without its terminal event; with
    ``finish="interrupt"``, a RUN_FINISHED asking a question)."""
    question = str(run.messages[-1].content) if run.messages else ""
    events: list[BaseEvent] = [
        RunStartedEvent(
            thread_id=run.thread_id, run_id=run.run_id, protocol_version=PROTOCOL_VERSION
        ),
        StateSnapshotEvent(snapshot={"asked": question, "steps": []}),
        TextMessageStartEvent(message_id="m1", role="assistant"),
        TextMessageContentEvent(message_id="m1", delta="Looking "),
        TextMessageContentEvent(message_id="m1", delta="it up."),
        TextMessageEndEvent(message_id="m1"),
        ToolCallStartEvent(tool_call_id="c1", tool_call_name="lookup", parent_message_id="m1"),
        ToolCallArgsEvent(tool_call_id="c1", delta='{"q":"x"}'),
        ToolCallEndEvent(tool_call_id="c1"),
        ToolCallResultEvent(message_id="r1", tool_call_id="c1", content="42"),
        StateDeltaEvent(delta=[{"op": "add", "path": "/steps/-", "value": "lookup"}]),
    ]
    if finish == "interrupt":
        ask = Interrupt(id="ask-1", reason="input_required", message="Which x?")
        outcome = RunFinishedInterruptOutcome(interrupts=[ask])
        events.append(RunFinishedEvent(thread_id=run.thread_id, run_id=run.run_id, outcome=outcome))
    elif finish:
        events.append(RunFinishedEvent(thread_id=run.thread_id, run_id=run.run_id, result=42))
    return events


async def agent_endpoint(request: Request) -> StreamingResponse:
    run = RunAgentInput.model_validate_json(await request.body())
    RECEIVED.append(run)
    encoder = EventEncoder()
    asked = request.query_params.get("finish")
    finish: bool | str = "interrupt" if asked == "interrupt" else asked != "no"

    async def body() -> AsyncIterator[str]:
        for event in script(run, finish=finish):
            yield encoder.encode(event)
            await asyncio.sleep(0.01)

    return StreamingResponse(body(), media_type=encoder.get_content_type())


@pytest.fixture(scope="module")
def remote_agent() -> Iterator[str]:
    """The URL of a real AG-UI agent (Starlette + the official encoder) on a free port."""
    app = Starlette(routes=[Route("/agent", agent_endpoint, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}/agent"
    server.should_exit = True
    thread.join(10)


def replay(server: LiveServer, task_id: str) -> list[dict[str, Any]]:
    """The task's first run replayed by the watch endpoint (from seq 0 to the run's end)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        text = http.get(
            f"/api/v1/tasks/{task_id}/agui",
            params={"until": "run_end"},
            headers={"Last-Event-ID": "0"},
        ).text
    return parse_sse(text)


def without_timestamps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "timestamp"} for e in events]


def test_attach_records_a_remote_run(sqlite_server: LiveServer, remote_agent: str) -> None:
    """The remote agent gets threadId = the task id and the message; every event it streams
    is recorded; the task completes with its result; replayed, the run is the same."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "remote"}).json()["id"]
    RECEIVED.clear()
    outcome = CliRunner().invoke(
        taskline,
        [
            "--url",
            sqlite_server.url,
            "agent",
            "attach",
            "--agui-url",
            remote_agent,
            "--task",
            task_id,
            "-m",
            "what is x?",
            "--batch-size",
            "4",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert f"task {task_id}: recorded 12 events" in outcome.output
    sent = RECEIVED[0]
    assert sent.thread_id == task_id and sent.messages[0].content == "what is x?"
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed" and task["result"] == 42
    state = http.get(f"/api/v1/tasks/{task_id}/state").json()["state"]
    assert state == {"asked": "what is x?", "steps": ["lookup"]}
    emitted = [e.model_dump(mode="json", by_alias=True) for e in script(sent, finish=True)]
    assert without_timestamps(replay(sqlite_server, task_id)) == without_timestamps(
        [{k: v for k, v in e.items() if v is not None} for e in emitted]
    )
    http.close()


def test_a_stream_without_terminal_event_fails_the_task(
    sqlite_server: LiveServer, remote_agent: str
) -> None:
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "remote"}).json()["id"]
    args = ["--url", sqlite_server.url, "agent", "attach", "--task", task_id]
    outcome = CliRunner().invoke(taskline, [*args, "--agui-url", remote_agent + "?finish=no"])
    assert outcome.exit_code == 1, outcome.output
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "failed"
    frames = replay(sqlite_server, task_id)
    assert frames[-1]["type"] == "RUN_ERROR"
    assert "ended without RUN_FINISHED" in frames[-1]["message"]
    http.close()


def test_attach_to_an_unknown_task_is_not_found(
    sqlite_server: LiveServer, remote_agent: str
) -> None:
    args = ["--url", sqlite_server.url, "agent", "attach", "--task", "task_nope"]
    outcome = CliRunner().invoke(taskline, [*args, "--agui-url", remote_agent])
    assert outcome.exit_code == 4, outcome.output
