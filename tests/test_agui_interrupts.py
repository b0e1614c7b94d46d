"""AG-UI 1.0 interrupts: a run that stops for a request ends with ``RUN_FINISHED`` whose
outcome is an interrupt; the next ``RunAgentInput`` answers it with ``resume`` entries and the
run goes on; the watch endpoint shows it; ingested AG-UI interrupts become requests."""

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from ag_ui.core import Interrupt, ResumeEntry
from click.testing import CliRunner
from pydantic import ValidationError

from taskline.agui.interrupts import APPROVAL_SCHEMA, answer_of, interrupt_of, spec_of
from taskline.cli.main import taskline
from taskline.domain.errors import InvalidInputError
from taskline.domain.requests import (
    ApprovalAction,
    RequestAnswer,
    RequestKind,
    RequestSpec,
    new_request,
)
from taskline.service.agui_gateway import task_id_for_thread
from taskline.settings import Settings
from tests.support.agui import docs_folder, parse_sse, post_run, run_input
from tests.support.server import LiveServer, serving
from tests.support.waiting import wait_until
from tests.support.ws import open_ws
from tests.test_agui_bridge import remote_agent

__all__ = ["remote_agent"]  # the module fixture, shared with the bridge's tests


@pytest.fixture
def approving_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose built-in agent reviews ``tmp_path`` and asks before writing the report."""
    yield from serving(
        Settings(
            database_url=database_url,
            review_roots=(str(tmp_path),),
            agent_approve=("write_report",),
        )
    )


def resume(body: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    return {**body, "runId": str(uuid.uuid4()), "messages": [], "resume": list(entries)}


async def interrupted_run(server: LiveServer, root: Path) -> tuple[dict[str, Any], list[Any]]:
    thread = str(uuid.uuid4())
    body = run_input(thread, str(root))
    return body, await post_run(server, body)


async def test_the_builtin_agent_interrupts_for_approval_and_goes_on_when_resumed(
    approving_server: LiveServer, tmp_path: Path
) -> None:
    """The review stops before ``write_report``: RUN_FINISHED with an interrupt naming the open
    request (reason, message, responseSchema, metadata); the task waits (in progress, needs
    input). A resume approving it answers the request, and the same review goes on to
    completion in the second run; the runs list shows both, the watch shows the interrupt."""
    body, frames = await interrupted_run(approving_server, docs_folder(tmp_path))
    last = frames[-1]
    assert last["type"] == "RUN_FINISHED" and last["runId"] == body["runId"], last
    assert frames[-2]["type"] == "STATE_SNAPSHOT"
    (interrupt,) = last["outcome"]["interrupts"]
    assert last["outcome"]["type"] == "interrupt" and "result" not in last
    assert interrupt["id"].startswith("req_") and interrupt["reason"] == "confirmation"
    assert interrupt["responseSchema"] == APPROVAL_SCHEMA and interrupt["message"]
    assert interrupt["metadata"]["taskline"]["action"]["name"] == "write_report"
    task_id = task_id_for_thread(body["threadId"])
    http = httpx.Client(base_url=approving_server.url, timeout=10)
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "in_progress" and task["needs_input"] is True
    request = http.get(f"/api/v1/requests/{interrupt['id']}").json()
    assert request["status"] == "open" and request["run_id"] == body["runId"]
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"]) for r in runs] == [(body["runId"], "interrupted")]
    watched = parse_sse(
        http.get(
            f"/api/v1/tasks/{task_id}/agui",
            params={"until": "run_end"},
            headers={"Last-Event-ID": "0"},
        ).text
    )
    assert watched[-1]["type"] == "RUN_FINISHED"
    assert watched[-1]["outcome"]["interrupts"][0]["id"] == interrupt["id"]

    second = resume(
        body, {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
    )
    frames = await post_run(approving_server, second)
    types = [f["type"] for f in frames]
    assert types[0] == "RUN_STARTED" and frames[0]["runId"] == second["runId"]
    assert types[-1] == "RUN_FINISHED" and "outcome" not in frames[-1], frames[-1]
    assert "TOOL_CALL_START" in types and frames[-1]["runId"] == second["runId"]
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed" and task["needs_input"] is False
    assert frames[-1]["result"] == task["result"]
    assert http.get(f"/api/v1/requests/{interrupt['id']}").json()["status"] == "approved"
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"], r["resumes"]) for r in runs] == [
        (body["runId"], "interrupted", None),
        (second["runId"], "completed", body["runId"]),
    ]
    http.close()


async def test_a_rejected_approval_fails_the_run_with_the_rejection(
    approving_server: LiveServer, tmp_path: Path
) -> None:
    body, frames = await interrupted_run(approving_server, docs_folder(tmp_path))
    interrupt_id = frames[-1]["outcome"]["interrupts"][0]["id"]
    payload = {"approved": False, "comment": "not today"}
    entry = {"interruptId": interrupt_id, "status": "resolved", "payload": payload}
    frames = await post_run(approving_server, resume(body, entry))
    assert frames[-1]["type"] == "RUN_ERROR", frames[-1]
    assert "not today" in frames[-1]["message"]
    task_id = task_id_for_thread(body["threadId"])
    with httpx.Client(base_url=approving_server.url) as http:
        assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "failed"
        assert http.get(f"/api/v1/requests/{interrupt_id}").json()["status"] == "rejected"


async def test_resume_input_that_does_not_fit_is_a_run_error(
    approving_server: LiveServer, tmp_path: Path
) -> None:
    """AG-UI's rules: a new input on a thread with open interrupts must answer all of them;
    an unknown interrupt id or a payload that does not fit is a RUN_ERROR; the request
    stays open meanwhile, and a good resume still works afterwards."""
    body, frames = await interrupted_run(approving_server, docs_folder(tmp_path))
    interrupt_id = frames[-1]["outcome"]["interrupts"][0]["id"]
    again = await post_run(approving_server, run_input(body["threadId"], "what now?"))
    assert again[-1]["type"] == "RUN_ERROR" and again[-1]["code"] == "interrupt_pending"
    assert interrupt_id in again[-1]["message"]
    unknown = {"interruptId": "req_nosuch1", "status": "resolved", "payload": {"approved": True}}
    mine = {"interruptId": interrupt_id, "status": "resolved", "payload": {"approved": True}}
    frames = await post_run(approving_server, resume(body, mine, unknown))
    assert frames[-1]["code"] == "unknown_interrupt", frames[-1]
    bad = {"interruptId": interrupt_id, "status": "resolved", "payload": "yes"}
    frames = await post_run(approving_server, resume(body, bad))
    assert frames[-1]["code"] == "invalid_resume", frames[-1]
    with httpx.Client(base_url=approving_server.url) as http:
        assert http.get(f"/api/v1/requests/{interrupt_id}").json()["status"] == "open"
    frames = await post_run(approving_server, resume(body, mine))
    assert frames[-1]["type"] == "RUN_FINISHED" and "outcome" not in frames[-1], frames[-1]


def test_ingested_agui_interrupts_become_requests(sqlite_server: LiveServer) -> None:
    """An AG-UI agent's RUN_FINISHED with an interrupt outcome (``?format=agui``) opens one
    request per interrupt (a question with its schema, an approval for a tool call), does not
    complete the task, and is stored naming the requests (the agent's id kept)."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "remote asks"}).json()["id"]
    ids = {"threadId": task_id, "runId": "remote-1"}
    schema = {"type": "string", "enum": ["a", "b"]}
    interrupts = [
        {"id": "int-1", "reason": "input_required", "message": "Which?", "responseSchema": schema},
        {
            "id": "int-2",
            "reason": "tool_call",
            "message": "Delete it?",
            "toolCallId": "call-9",
            "metadata": {"name": "delete_branch", "arguments": {"branch": "old"}},
        },
    ]
    events = [
        {"type": "RUN_STARTED", **ids},
        {"type": "RUN_FINISHED", **ids, "outcome": {"type": "interrupt", "interrupts": interrupts}},
    ]
    posted = http.post(f"/api/v1/tasks/{task_id}/events", params={"format": "agui"}, json=events)
    assert posted.status_code == 200, posted.text
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "in_progress" and task["needs_input"] is True
    requests = http.get("/api/v1/requests", params={"task_id": task_id}).json()["requests"]
    question, approval = requests
    assert question["kind"] == "question" and question["question"] == "Which?"
    assert question["response_schema"] == schema and question["run_id"] == "remote-1"
    assert approval["kind"] == "approval" and approval["tool_call_id"] == "call-9"
    assert approval["action"]["name"] == "delete_branch"
    assert approval["action"]["arguments"] == {"branch": "old"}
    stored = http.get(f"/api/v1/tasks/{task_id}/events", params={"types": "custom"}).json()
    finished = [e for e in stored["events"] if e["data"].get("name") == "agui:RUN_FINISHED"]
    named = finished[0]["data"]["agui"]["outcome"]["interrupts"]
    assert [i["id"] for i in named] == [question["id"], approval["id"]]
    assert named[0]["metadata"]["taskline"]["agui_interrupt_id"] == "int-1"
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"]) for r in runs] == [("remote-1", "interrupted")]
    http.close()


def test_agent_approve_setting_reads_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLINE_AGENT_APPROVE", "write_report, list_files")
    assert Settings().agent_approve == ("write_report", "list_files")
    monkeypatch.setenv("TASKLINE_AGENT_APPROVE", "delete_everything")
    with pytest.raises(ValidationError):
        Settings()


def test_agent_run_waits_for_the_approval_of_a_person(sqlite_server: LiveServer) -> None:
    """``taskline agent run --approve write_report``: the agent (over HTTP, the SDK's
    ``run.approval``) waits with the request open; a person approves over REST; it completes."""
    args = ["--url", sqlite_server.url, "agent", "run", "--sample", "--delay", "0"]
    outcome: list[Any] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            CliRunner().invoke(taskline, [*args, "--approve", "write_report"])
        )
    )
    runner.start()
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    try:
        request = wait_until(
            lambda: next(
                iter(http.get("/api/v1/requests", params={"status": "open"}).json()["requests"]),
                None,
            ),
            message="the agent to ask for its approval",
        )
        assert request["kind"] == "approval" and request["action"]["name"] == "write_report"
        answered = http.post(
            f"/api/v1/requests/{request['id']}/answer", json={"decision": "approve"}
        )
        assert answered.status_code == 200, answered.text
    finally:
        runner.join(60)
        http.close()
    (result,) = outcome
    assert result.exit_code == 0, result.output
    assert "waiting for a person to approve write_report" in result.output
    assert "write_report approved" in result.output


def test_a_bridged_interrupt_becomes_a_request(
    sqlite_server: LiveServer, remote_agent: str
) -> None:
    """``taskline agent attach`` on an agent that ends its run asking: the run is recorded,
    the question is a request of that run (the inbox has it), the task waits for input."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "remote asks"}).json()["id"]
    args = ["--url", sqlite_server.url, "agent", "attach", "--task", task_id]
    outcome = CliRunner().invoke(
        taskline, [*args, "--agui-url", remote_agent + "?finish=interrupt"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "interrupt: the agent waits for 1 answer" in outcome.output
    (request,) = http.get("/api/v1/requests", params={"task_id": task_id}).json()["requests"]
    assert request["kind"] == "question" and request["question"] == "Which x?"
    task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "in_progress" and task["needs_input"] is True
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["outcome"], r["source"]) for r in runs] == [("interrupted", "agui-bridge")]
    assert runs[0]["run_id"] == request["run_id"]
    http.close()


async def test_an_interrupt_answered_in_the_inbox_lets_the_run_go_on(
    approving_server: LiveServer, tmp_path: Path
) -> None:
    """A person approves from the inbox (REST) instead of a resume: the same run goes on and
    completes; the runs list follows (interrupted, then completed) and the watch stream shows
    the run starting again after its interrupt."""
    body, frames = await interrupted_run(approving_server, docs_folder(tmp_path))
    interrupt_id = frames[-1]["outcome"]["interrupts"][0]["id"]
    task_id = task_id_for_thread(body["threadId"])
    http = httpx.Client(base_url=approving_server.url, timeout=10)
    head = http.get(f"/api/v1/tasks/{task_id}/events").json()["last_seq"]
    approved = http.post(f"/api/v1/requests/{interrupt_id}/answer", json={"decision": "approve"})
    assert approved.status_code == 200, approved.text
    wait_until(
        lambda: http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
        message="the review to complete after the approval",
    )
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"]) for r in runs] == [(body["runId"], "completed")]
    watched = parse_sse(
        http.get(
            f"/api/v1/tasks/{task_id}/agui",
            params={"until": "run_end"},
            headers={"Last-Event-ID": str(head)},
        ).text
    )
    assert watched[0]["type"] == "RUN_STARTED" and watched[0]["runId"] == body["runId"]
    assert watched[-1]["type"] == "RUN_FINISHED" and "outcome" not in watched[-1]
    http.close()


async def test_a_connected_agui_agent_interrupts_and_is_resumed(sqlite_server: LiveServer) -> None:
    """A connected agent that speaks AG-UI ends its run asking (its RUN_FINISHED with an
    interrupt, ingested): the client gets the interrupt naming the request; the resume
    answers it and reaches the agent in the next ``run`` command, whose events finish it."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "asks"}).json()["id"]
    url = f"/api/v1/tasks/{task_id}/events"
    async with open_ws(f"{sqlite_server.ws_url}/ws/agents/agent_asker") as ws:
        json.loads(await ws.recv())  # welcome
        http.patch(f"/api/v1/tasks/{task_id}", json={"assigned_agent_id": "agent_asker"})
        body = run_input(task_id, "go")
        runner = asyncio.create_task(post_run(sqlite_server, body))
        command = await next_run_command(ws)
        ids = {"threadId": task_id, "runId": command["run"]["runId"]}
        ask = {"id": "mine-1", "reason": "confirmation", "message": "Deploy?"}
        events = [
            {"type": "RUN_STARTED", **ids},
            {"type": "RUN_FINISHED", **ids, "outcome": {"type": "interrupt", "interrupts": [ask]}},
        ]
        assert http.post(url, params={"format": "agui"}, json=events).status_code == 200
        frames = await asyncio.wait_for(runner, 20)
        (interrupt,) = frames[-1]["outcome"]["interrupts"]
        assert interrupt["id"].startswith("req_") and interrupt["message"] == "Deploy?"
        assert interrupt["metadata"]["taskline"]["agui_interrupt_id"] == "mine-1"
        logged = http.get(url, params={"types": "custom"}).json()["events"]
        assert [e["data"]["name"] for e in logged] == ["agui:RUN_FINISHED"]  # once

        entry = {
            "interruptId": interrupt["id"],
            "status": "resolved",
            "payload": {"approved": True},
        }
        second = resume(body, entry)
        runner = asyncio.create_task(post_run(sqlite_server, second))
        command = await next_run_command(ws)
        assert command["run"]["resume"][0]["interruptId"] == interrupt["id"]
        request = http.get(f"/api/v1/requests/{interrupt['id']}").json()
        assert request["status"] == "approved"
        ids = {"threadId": task_id, "runId": second["runId"]}
        done = [{"type": "RUN_STARTED", **ids}, {"type": "RUN_FINISHED", **ids, "result": "ok"}]
        assert http.post(url, params={"format": "agui"}, json=done).status_code == 200
        frames = await asyncio.wait_for(runner, 20)
    assert frames[-1]["type"] == "RUN_FINISHED" and frames[-1]["result"] == "ok"
    assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"
    http.close()


async def next_run_command(ws: Any) -> dict[str, Any]:
    command: dict[str, Any] = {}
    while command.get("command") != "run":
        command = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return command


def test_requests_and_interrupts_translate_both_ways() -> None:
    """interrupt_of / answer_of / spec_of with the official models: reasons, schemas, the
    expiry as ISO text, approval payloads, an expired ingested interrupt refused."""
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    spec = RequestSpec(kind=RequestKind.QUESTION, question="Colour?", choices=["red", "blue"])
    question = new_request("task_a", spec, by="agent:agent_x", now=now)
    question = question.model_copy(update={"expires_at": now + timedelta(minutes=5)})
    made = interrupt_of(question)
    assert (made.id, made.reason, made.message) == (question.id, "input_required", "Colour?")
    assert made.response_schema == {"type": "string", "enum": ["red", "blue"]}
    assert made.expires_at == "2026-12-01T12:05:00Z"
    entry = ResumeEntry(interrupt_id=question.id, status="resolved", payload="red")
    assert answer_of(question, entry) == RequestAnswer(answer="red")
    assert answer_of(question, entry.model_copy(update={"status": "cancelled"})) is None
    action = ApprovalAction(name="deploy", arguments={"to": "prod"})
    approval = new_request(
        "task_a",
        RequestSpec(
            kind=RequestKind.APPROVAL, question="Deploy?", action=action, tool_call_id="c1"
        ),
        by="agent:agent_x",
        now=now,
    )
    assert interrupt_of(approval).reason == "tool_call"
    edited = {"approved": True, "arguments": {"to": "staging"}, "comment": "safer"}
    reply = answer_of(
        approval, ResumeEntry(interrupt_id=approval.id, status="resolved", payload=edited)
    )
    assert reply == RequestAnswer(decision="approve", arguments={"to": "staging"}, comment="safer")
    with pytest.raises(InvalidInputError):
        answer_of(approval, ResumeEntry(interrupt_id=approval.id, status="resolved", payload=1))
    late = Interrupt(id="i1", reason="input_required", expires_at="2026-12-01T11:00:00Z")
    with pytest.raises(InvalidInputError):
        spec_of(late, run_id="r1", now=now)
    soon = late.model_copy(update={"expires_at": "2026-12-01T12:01:00Z"})
    assert spec_of(soon, run_id="r1", now=now).expires_in == 60
