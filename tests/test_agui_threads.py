"""Threads are multi-run: a new run on a task whose run ended reopens it (a logged,
attributed ``task_started``), whichever door the run comes through (``POST /api/v1/agui``,
``taskline agent attach``, ``taskline agent run --task``), and the task's runs are listed
with their outcomes (``GET /api/v1/tasks/{id}/runs``)."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from taskline.agui import to_agui
from taskline.cli.main import taskline
from taskline.domain.errors import InvalidTransitionError
from taskline.domain.events import WebSocketMessage
from taskline.domain.runs import RunOutcome, runs_of
from taskline.domain.status import TaskStatus, check_run_start
from taskline.service.agui_gateway import task_id_for_thread
from tests.support.agui import docs_folder, parse_sse, post_run, review_server, run_input
from tests.support.server import LiveServer
from tests.test_agui_bridge import RECEIVED, remote_agent

__all__ = ["remote_agent", "review_server"]  # fixtures: the bridge's, tests/support/agui.py's


def events_of(http: httpx.Client, task_id: str, types: str = "") -> list[dict[str, Any]]:
    params = {"types": types} if types else {}
    events: list[dict[str, Any]] = http.get(
        f"/api/v1/tasks/{task_id}/events", params=params
    ).json()["events"]
    return events


def watch_from(http: httpx.Client, task_id: str, after: int) -> list[dict[str, Any]]:
    """The AG-UI watch stream of the first run after seq ``after``, to its end."""
    text = http.get(
        f"/api/v1/tasks/{task_id}/agui",
        params={"until": "run_end"},
        headers={"Last-Event-ID": str(after)},
    ).text
    return parse_sse(text)


def test_only_a_new_run_reopens_a_finished_task() -> None:
    """completed/failed -> in_progress is a run's start naming its run; nothing else."""
    assert check_run_start("task_a", TaskStatus.COMPLETED, "run_2") == TaskStatus.COMPLETED
    assert check_run_start("task_a", TaskStatus.FAILED, "run_2") == TaskStatus.FAILED
    assert check_run_start("task_a", TaskStatus.PENDING, "run_1") is None
    assert check_run_start("task_a", TaskStatus.FAILED, None) is None  # a retry, as before
    with pytest.raises(InvalidTransitionError):
        check_run_start("task_a", TaskStatus.COMPLETED, None)
    with pytest.raises(InvalidTransitionError):
        check_run_start("task_a", TaskStatus.CANCELLED, "run_2")


def _log(*events: tuple[str, dict[str, Any]]) -> list[WebSocketMessage]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return [
        WebSocketMessage(
            id=f"evt_{seq}",
            seq=seq,
            task_id="task_a",
            event_type=kind,
            data=fields.pop("data", {}),
            timestamp=start + timedelta(seconds=seq),
            **fields,
        )
        for seq, (kind, fields) in enumerate(events, start=1)
    ]


def test_runs_are_folded_from_the_log() -> None:
    """Runs begin at a start naming them, end at the task's end; events naming no run go to
    the open run; an unserved error is a run of its own."""
    log = _log(
        ("task_created", {}),
        ("task_started", {"run_id": "run_1", "actor": "agent:agent_x"}),
        ("task_paused", {}),  # a person's pause: the open run
        ("task_resumed", {}),
        ("task_completed", {"run_id": "run_1"}),
        ("error", {"run_id": "run_2", "data": {"message": "nobody", "unserved": True}}),
        ("task_started", {"run_id": "run_3", "data": {"reopened_from": "completed"}}),
        ("task_failed", {"run_id": "run_3", "data": {"error": "boom"}}),
        ("task_cancelled", {}),  # no run open: not a run's
        ("task_started", {"data": {"run_id": "run_4"}}),  # ingested before envelopes had it
    )
    runs = runs_of(log)
    assert [(r.run_id, r.outcome) for r in runs] == [
        ("run_1", RunOutcome.COMPLETED),
        ("run_2", RunOutcome.UNSERVED),
        ("run_3", RunOutcome.FAILED),
        ("run_4", RunOutcome.RUNNING),
    ]
    assert runs[0].agent_id == "agent_x" and (runs[0].first_seq, runs[0].last_seq) == (2, 5)
    assert runs[1].error == "nobody" and runs[2].error == "boom"
    assert runs[2].reopened_from == "completed" and runs[3].ended_at is None
    unserved = [e.type.value for e in to_agui(log[5])]
    assert unserved == ["RUN_STARTED", "RUN_ERROR"]


async def test_a_second_agui_run_reopens_the_completed_task(
    review_server: LiveServer, tmp_path: Path
) -> None:
    """Two runs on one thread: the second reopens the completed task (``task_started`` with
    ``reopened_from``, by the built-in agent), finishes, and both are listed as completed;
    the watch stream shows the second run as a run of its own."""
    root = docs_folder(tmp_path)
    thread = str(uuid.uuid4())
    task_id = task_id_for_thread(thread)
    first = run_input(thread, str(root))
    assert [f["type"] for f in await post_run(review_server, first)][-1] == "RUN_FINISHED"
    http = httpx.Client(base_url=review_server.url, timeout=10)
    head = events_of(http, task_id)[-1]["seq"]
    second = run_input(thread, str(root))
    frames = await post_run(review_server, second)
    types = [f["type"] for f in frames]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED", frames[-1]
    assert frames[-1]["runId"] == second["runId"]
    assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"
    started = events_of(http, task_id, "task_started")
    assert [e["run_id"] for e in started] == [first["runId"], second["runId"]]
    assert "reopened_from" not in started[0]["data"]
    assert started[1]["data"]["reopened_from"] == "completed"
    assert started[1]["actor"] == "agent:agent_builtin"
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()
    assert runs["task_id"] == task_id
    assert [(r["run_id"], r["outcome"]) for r in runs["runs"]] == [
        (first["runId"], "completed"),
        (second["runId"], "completed"),
    ]
    assert runs["runs"][1]["reopened_from"] == "completed"
    assert runs["runs"][1]["agent_id"] == "agent_builtin"
    assert runs["runs"][1]["started_at"] <= runs["runs"][1]["ended_at"]
    watched = watch_from(http, task_id, head)
    assert watched[0]["type"] == "RUN_STARTED" and watched[0]["runId"] == second["runId"]
    assert watched[-1]["type"] == "RUN_FINISHED"
    http.close()


async def test_an_unserved_run_leaves_no_task_and_is_logged_on_an_existing_one(
    sqlite_server: LiveServer,
) -> None:
    """A run nobody serves on a new thread creates no task; on an existing task its RUN_ERROR
    is logged (an ``error`` event of that run, the task's status untouched), so viewers of
    the task see it, and it is listed as an unserved run."""
    thread = str(uuid.uuid4())
    frames = await post_run(sqlite_server, run_input(thread, "hello there"))
    assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_ERROR"]
    assert frames[1]["code"] == "no_agent"
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    assert http.get(f"/api/v1/tasks/{task_id_for_thread(thread)}").status_code == 404
    task_id = http.post("/api/v1/tasks/", json={"title": "kept"}).json()["id"]
    head = events_of(http, task_id)[-1]["seq"]
    body = run_input(task_id, "hello again")
    frames = await post_run(sqlite_server, body)
    assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_ERROR"]
    logged = events_of(http, task_id, "error")
    assert len(logged) == 1 and logged[0]["run_id"] == body["runId"]
    assert logged[0]["data"]["code"] == "no_agent"
    assert logged[0]["source"] == "agui-gateway" and logged[0]["actor"]
    assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "pending"
    watched = watch_from(http, task_id, head)
    assert [f["type"] for f in watched] == ["RUN_STARTED", "RUN_ERROR"]
    assert watched[0]["runId"] == body["runId"] and watched[1]["code"] == "no_agent"
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"]) for r in runs] == [(body["runId"], "unserved")]
    assert "No agent is connected" in runs[0]["error"]
    assert http.get("/api/v1/tasks/task_nosuch1/runs").status_code == 404
    http.close()


def test_attach_twice_records_both_runs_with_their_run_ids(
    sqlite_server: LiveServer, remote_agent: str
) -> None:
    """A second ``taskline agent attach`` on the completed task reopens it and records the
    remote agent's run; every bridged event carries its run's id and source on the envelope."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "remote twice"}).json()["id"]
    RECEIVED.clear()
    args = ["--url", sqlite_server.url, "agent", "attach", "--agui-url", remote_agent]
    for message in ("first?", "second?"):
        outcome = CliRunner().invoke(taskline, [*args, "--task", task_id, "-m", message])
        assert outcome.exit_code == 0, outcome.output
    assert [r.thread_id for r in RECEIVED] == [task_id, task_id]
    run_ids = [r.run_id for r in RECEIVED]
    assert run_ids[0] != run_ids[1]
    bridged = [e for e in events_of(http, task_id) if e["event_type"] != "task_created"]
    assert {e["run_id"] for e in bridged} == set(run_ids)
    assert {e["source"] for e in bridged} == {"agui-bridge"}
    assert len([e for e in bridged if e["run_id"] == run_ids[1]]) == 12
    started = events_of(http, task_id, "task_started")
    assert started[1]["data"]["reopened_from"] == "completed"
    runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
    assert [(r["run_id"], r["outcome"], r["source"]) for r in runs] == [
        (run_ids[0], "completed", "agui-bridge"),
        (run_ids[1], "completed", "agui-bridge"),
    ]
    http.close()


def test_agent_run_on_a_completed_task_reopens_it(sqlite_server: LiveServer) -> None:
    """``taskline agent run --task`` on a task the built-in agent completed runs again."""
    args = ["--url", sqlite_server.url, "agent", "run", "--sample", "--delay", "0"]
    first = CliRunner().invoke(taskline, args)
    assert first.exit_code == 0, first.output
    task_id = first.output.split()[1].rstrip(":")
    again = CliRunner().invoke(taskline, [*args, "--task", task_id])
    assert again.exit_code == 0, again.output
    assert f"task {task_id} completed" in again.output
    with httpx.Client(base_url=sqlite_server.url) as http:
        runs = http.get(f"/api/v1/tasks/{task_id}/runs").json()["runs"]
        assert [r["outcome"] for r in runs] == ["completed", "completed"]
        assert runs[1]["reopened_from"] == "completed"


def test_ingested_agui_events_carry_their_run(sqlite_server: LiveServer) -> None:
    """``?format=agui``: the batch's RUN_STARTED names the run of the events after it (and its
    parent), ``?run_id=`` overrides it; ``?source=`` (default ``agui``) is each event's
    source; a runId too long for an envelope is a 422 naming it."""
    http = httpx.Client(base_url=sqlite_server.url, timeout=10)
    task_id = http.post("/api/v1/tasks/", json={"title": "ingest"}).json()["id"]
    url = f"/api/v1/tasks/{task_id}/events"
    started = {"type": "RUN_STARTED", "threadId": task_id, "runId": "r1", "parentRunId": "r0"}
    text = {"type": "TEXT_MESSAGE_START", "messageId": "m1"}
    posted = http.post(url, params={"format": "agui"}, json=[started, text])
    assert posted.status_code == 200, posted.text
    later = {"type": "TEXT_MESSAGE_END", "messageId": "m1"}
    params = {"format": "agui", "run_id": "r1", "source": "my-bridge"}
    assert http.post(url, params=params, json=[later]).status_code == 200
    events = events_of(http, task_id)[1:]
    assert [(e["run_id"], e["parent_run_id"], e["source"]) for e in events] == [
        ("r1", "r0", "agui"),
        ("r1", "r0", "agui"),
        ("r1", None, "my-bridge"),
    ]
    too_long = {**started, "runId": "r" * 81}
    refused = http.post(url, params={"format": "agui"}, json=[too_long])
    assert refused.status_code == 422 and "events.0.runId" in refused.text
    http.close()
