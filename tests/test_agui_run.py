"""POST /api/v1/agui: AG-UI runs served by the built-in agent or by a connected agent."""

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from taskline.service.agui_gateway import task_id_for_thread
from tests.support.agui import docs_folder, post_run, review_server, run_input, stream_run
from tests.support.server import LiveServer
from tests.support.waiting import async_wait_until
from tests.support.ws import open_ws

__all__ = ["review_server"]  # the fixture, from tests/support/agui.py


def test_thread_ids_map_to_task_ids() -> None:
    assert task_id_for_thread("task_abc123") == "task_abc123"
    derived = task_id_for_thread("0b6a-UUID")
    assert derived.startswith("task_") and derived == task_id_for_thread("0b6a-UUID")


async def test_builtin_agent_reviews_a_folder(review_server: LiveServer, tmp_path: Path) -> None:
    """A folder (under the review roots) as the last user message: the built-in agent reviews
    it; the stream opens with RUN_STARTED (echoing the ids), ends with RUN_FINISHED carrying
    the report, then ends."""
    root = docs_folder(tmp_path, with_text_file=True)
    thread = str(uuid.uuid4())
    body = run_input(thread, str(root))
    frames = await post_run(review_server, body)
    types = [f["type"] for f in frames]
    assert types[0] == "RUN_STARTED" and types.count("RUN_STARTED") == 1
    assert frames[0]["threadId"] == thread and frames[0]["runId"] == body["runId"]
    assert frames[0]["protocolVersion"] == "1.0"
    assert types[-1] == "RUN_FINISHED" and "RUN_ERROR" not in types
    assert frames[-1]["threadId"] == thread and frames[-1]["runId"] == body["runId"]
    assert "TOOL_CALL_START" in types and "STATE_SNAPSHOT" in types
    task_id = task_id_for_thread(thread)
    with httpx.Client(base_url=review_server.url) as http:
        task = http.get(f"/api/v1/tasks/{task_id}").json()
        assert task["status"] == "completed" and task["title"] == str(root)[:200]
        assert frames[-1]["result"] == task["result"]
        events = http.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
        assert {e["run_id"] for e in events if e["event_type"] == "task_started"} == {body["runId"]}

    # a question about the last report is answered from it, in one text message
    question = run_input(thread, "How many TODO markers?")
    answer = await post_run(review_server, question)
    assert [f["type"] for f in answer] == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert "TODO" in answer[3]["delta"]

    # threads are multi-run: reviewing again is a new run that reopens the completed task
    again = await post_run(review_server, run_input(thread, str(root)))
    assert [f["type"] for f in again][-1] == "RUN_FINISHED"
    assert [f["type"] for f in again].count("RUN_STARTED") == 1


async def test_no_agent_and_nothing_to_do_is_a_run_error(sqlite_server: LiveServer) -> None:
    """Nobody can serve the run: RUN_ERROR saying why, and no task is left behind."""
    frames = await post_run(sqlite_server, run_input("task_nothing1", "hello there"))
    assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_ERROR"]
    assert frames[1]["code"] == "no_agent" and "No agent is connected" in frames[1]["message"]
    with httpx.Client(base_url=sqlite_server.url) as http:
        assert http.get("/api/v1/tasks/task_nothing1").status_code == 404


def test_invalid_run_input_is_a_422_problem(sqlite_server: LiveServer) -> None:
    with httpx.Client(base_url=sqlite_server.url) as http:
        response = http.post("/api/v1/agui", json={"threadId": "t", "messages": []})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "runId" in response.json()["detail"]
        response = http.post(
            "/api/v1/agui", content=b"not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        # a body that is not declared JSON is refused before it is read (no CSRF by form)
        response = http.post("/api/v1/agui", content=b"not json")
        assert response.status_code == 415


async def test_a_connected_agent_serves_the_run_and_its_loss_fails_it(
    server: LiveServer,
) -> None:
    """The task's connected agent gets a ``run`` command with the RunAgentInput; its events
    stream back; when it disconnects mid-run the stream ends with RUN_ERROR and the task is
    failed with the reason."""
    http = httpx.Client(base_url=server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "ext", "assigned_agent_id": None}).json()[
        "id"
    ]
    url = f"{server.ws_url}/ws/agents/agent_ext?name=Ext"
    async with open_ws(url) as ws:
        json.loads(await ws.recv())  # welcome
        http.patch(f"/api/v1/tasks/{task_id}", json={"assigned_agent_id": "agent_ext"})
        body = run_input(task_id, "do it")
        seen: list[dict[str, Any]] = []
        runner = asyncio.create_task(stream_run(server, body, seen))
        command: dict[str, Any] = {}
        while command.get("command") != "run":
            command = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert command["run"]["runId"] == body["runId"]
        assert command["run"]["messages"][0]["content"] == "do it"
        run_id = body["runId"]
        events = [
            {"event_type": "task_started", "run_id": run_id},
            {"event_type": "message.start", "run_id": run_id, "data": {"message_id": "m1"}},
            {
                "event_type": "message.delta",
                "run_id": run_id,
                "data": {"message_id": "m1", "delta": "Working"},
            },
        ]
        publish = {"type": "publish", "batch_id": "b1", "task_id": task_id, "events": events}
        await ws.send(json.dumps(publish))
        while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("type") != "ack":
            pass
        # disconnect mid-run, once the client has the streamed text
        await async_wait_until(
            lambda: "TEXT_MESSAGE_CONTENT" in [f["type"] for f in seen],
            message=lambda: f"the AG-UI client to get the text (has {[f['type'] for f in seen]})",
        )
    frames = await asyncio.wait_for(runner, 20)
    types = [f["type"] for f in frames]
    assert types == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "RUN_ERROR"]
    assert "agent_ext disconnected" in frames[-1]["message"]
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "failed"
    failed = http.get(f"/api/v1/tasks/{task_id}/events", params={"types": "task_failed"}).json()[
        "events"
    ]
    assert "agent_ext disconnected" in failed[-1]["data"]["error"]
    http.close()


async def test_a_connected_agent_publishing_agui_events_finishes_the_run(
    sqlite_server: LiveServer,
) -> None:
    """An agent answering the ``run`` command with AG-UI events (``?format=agui``, no run id)
    completes the run: the client gets them and one RUN_FINISHED echoing its ids."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "ext"}).json()["id"]
    async with open_ws(f"{sqlite_server.ws_url}/ws/agents/agent_agui") as ws:
        json.loads(await ws.recv())  # welcome
        http.patch(f"/api/v1/tasks/{task_id}", json={"assigned_agent_id": "agent_agui"})
        body = run_input(task_id, "hi")
        runner = asyncio.create_task(post_run(sqlite_server, body))
        command: dict[str, Any] = {}
        while command.get("command") != "run":
            command = json.loads(await asyncio.wait_for(ws.recv(), 10))
        events = [
            {"type": "RUN_STARTED", "threadId": "own", "runId": "own-run"},
            {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "Hello"},
            {"type": "TEXT_MESSAGE_END", "messageId": "a1"},
            {"type": "RUN_FINISHED", "threadId": "own", "runId": "own-run", "result": "ok"},
        ]
        posted = http.post(
            f"/api/v1/tasks/{task_id}/events", params={"format": "agui"}, json=events
        )
        assert posted.status_code == 200, posted.text
        frames = await asyncio.wait_for(runner, 20)
    assert [f["type"] for f in frames] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert frames[-1]["threadId"] == task_id and frames[-1]["runId"] == body["runId"]
    assert frames[-1]["result"] == "ok"
    assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"
    http.close()


async def test_a_thread_runs_one_run_at_a_time(sqlite_server: LiveServer) -> None:
    """While a thread's run is in progress, another run request for it is a 409 problem (the
    first run goes on undisturbed); once the first has finished, the thread takes runs again."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "one at a time"}).json()["id"]
    async with open_ws(f"{sqlite_server.ws_url}/ws/agents/agent_solo") as ws:
        json.loads(await ws.recv())  # welcome
        http.patch(f"/api/v1/tasks/{task_id}", json={"assigned_agent_id": "agent_solo"})
        first = run_input(task_id, "first")
        runner = asyncio.create_task(post_run(sqlite_server, first))
        command: dict[str, Any] = {}
        while command.get("command") != "run":
            command = json.loads(await asyncio.wait_for(ws.recv(), 10))
        second = http.post("/api/v1/agui", json=run_input(task_id, "second"))
        assert second.status_code == 409
        assert second.headers["content-type"] == "application/problem+json"
        assert first["runId"] in second.json()["detail"]
        ids = {"threadId": task_id, "runId": first["runId"]}
        finished = [{"type": "RUN_STARTED", **ids}, {"type": "RUN_FINISHED", **ids, "result": 1}]
        posted = http.post(
            f"/api/v1/tasks/{task_id}/events", params={"format": "agui"}, json=finished
        )
        assert posted.status_code == 200, posted.text
        frames = await asyncio.wait_for(runner, 20)
        assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_FINISHED"]
        # the thread is free again: a new run reaches the agent
        again = asyncio.create_task(post_run(sqlite_server, run_input(task_id, "third")))
        command = {}
        while command.get("command") != "run":
            command = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert command["run"]["messages"][0]["content"] == "third"
    frames = await asyncio.wait_for(again, 20)
    assert frames[-1]["type"] == "RUN_ERROR"  # its agent left before finishing it
    http.close()
