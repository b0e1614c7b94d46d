"""The SDK's blocking face: runs, subscriptions and the new REST methods from plain sync code."""

import threading

import httpx
import pytest

from taskline.domain.events import WebSocketMessage
from taskline.sdk import Client, Conflict, HumanMessage, NotFound
from tests.support.server import LiveServer
from tests.support.waiting import wait_until


def kinds(client: Client, task_id: str) -> list[str]:
    return [e.event_type.value for e in client.events(task_id).events]


def wait_offline(client: Client, agent_id: str) -> None:
    wait_until(
        lambda: client.get_agent(agent_id).status == "offline",
        message=f"{agent_id} to go offline",
    )


def test_a_sync_run_reports_like_an_async_one(sqlite_server: LiveServer) -> None:
    """with client.run(...) works in plain sync code: every report, then completion."""
    with Client(sqlite_server.url) as client:
        task = client.create_task("Sync", sections=[{"title": "S", "subtasks": [{"title": "a"}]}])
        subtask_id = task.sections[0].subtasks[0].id
        with client.run(task.id, agent="agent_sync", name="Sync agent") as run:
            assert run.task is not None and run.task.id == task.id
            run.progress(0.5, "Halfway", confidence=0.7)
            run.confidence(0.8)
            with run.tool_call("count_words", {"path": "a.md"}) as call:
                call.set_result(42)
            with run.message() as text:
                text.write("Forty-two ")
                text.write("words.")
            with run.step("report"):
                run.state.snapshot({"words": 42})
                run.state.patch([{"op": "replace", "path": "/words", "value": 43}])
            run.subtask(subtask_id).done()
            run.flush()
            assert run.pending == 0
        assert (
            kinds(client, task.id)[1:]
            == [
                "task_started",
                "agent_status_change",
                "progress_update",
                "confidence_update",
                "tool_call.start",
                "tool_call.end",
                "message.start",
                "message.delta",
                "message.delta",
                "message.end",
                "step.start",
                "state.snapshot",
                "state.patch",
                "step.end",
                "subtask_updated",
                "task_completed",
                "agent_status_change",
            ][: len(kinds(client, task.id)) - 1]
        )
        log = client.events(task.id).events
        assert log[6].data["result"] == 42
        assert text.text == "Forty-two words."
        done = client.get_task(task.id)
        assert (done.status, done.confidence, done.sections[0].subtasks[0].done) == (
            "completed",
            0.8,
            True,
        )
        assert client.state(task.id).state == {"words": 43}


def test_a_sync_run_fails_the_task_on_an_exception(sqlite_server: LiveServer) -> None:
    """An exception inside a sync run (and its tool call) fails the task and propagates."""
    with Client(sqlite_server.url) as client:
        task = client.create_task("Sync failure")
        with (
            pytest.raises(KeyError),
            client.run(task.id, agent="agent_syncfail") as run,
            run.tool_call("lookup", {"key": "x"}),
        ):
            raise KeyError("x")
        log = client.events(task.id).events
        end = next(e for e in log if e.event_type == "tool_call.end")
        assert end.data["error"] == "KeyError: 'x'"
        failed = next(e for e in log if e.event_type == "task_failed")
        assert failed.data["error"] == "KeyError: 'x'"
        assert client.get_task(task.id).status == "failed"


def test_sync_commands_and_subscription(sqlite_server: LiveServer) -> None:
    """Commands reach a sync run (callbacks run in the SDK's thread); a blocking
    subscription yields the run's events."""
    with Client(sqlite_server.url) as client, httpx.Client(base_url=sqlite_server.url) as http:
        task = client.create_task("Sync steering")
        got: list[HumanMessage] = []
        arrived = threading.Event()

        def on_message(message: HumanMessage) -> None:
            got.append(message)
            arrived.set()

        with client.run(task.id, agent="agent_syncctl") as run:
            run.on_message(on_message)
            http.post(f"/api/v1/tasks/{task.id}/messages", json={"content": "hello"})
            assert arrived.wait(10)
            assert got[0].content == "hello" and run.messages == got
            client.pause(task.id)
            wait_until(lambda: run.paused, message="the run to see the pause")
            assert run.wait_if_paused(timeout=0.2) is True and run.paused  # still paused
            client.cancel(task.id)
            assert run.wait_if_paused() is False and run.cancelled

        seen: list[WebSocketMessage] = []
        with client.subscribe(task.id, since=0) as events:
            for event in events:
                seen.append(event)
                if event.event_type == "task_cancelled":
                    break
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))


def test_sections_subtasks_control_and_next_task(sqlite_server: LiveServer) -> None:
    """The REST methods added for agents, through the sync face."""
    with Client(sqlite_server.url) as client:
        agent = client.create_agent("Planner", id="agent_planner")
        task = client.create_task("Plan", assigned_agent_id=agent.id)
        assert client.next_task(agent.id) == client.get_task(task.id)
        section = client.add_section(task.id, "Read", ["a.md", {"title": "b.md", "done": True}])
        assert [s.title for s in section.subtasks] == ["a.md", "b.md"]
        first = client.add_section(task.id, "Plan", position=0)
        assert [s.id for s in client.get_task(task.id).sections] == [first.id, section.id]
        assert client.rename_section(task.id, first.id, "Planning").title == "Planning"
        extra = client.add_subtask(task.id, first.id, "outline", notes="short")
        assert client.toggle_subtask(task.id, extra.id).done is True
        moved = client.update_subtask(task.id, extra.id, section_id=section.id, title="Outline")
        assert moved.title == "Outline"
        client.delete_subtask(task.id, section.subtasks[0].id)
        client.delete_section(task.id, first.id)
        assert [len(s.subtasks) for s in client.get_task(task.id).sections] == [2]
        with pytest.raises(NotFound):
            client.delete_section(task.id, "sec_missing")

        seqs = client.publish(task.id, {"event_type": "progress_update", "data": {"progress": 0.1}})
        page = client.events(task.id, since=seqs[0] - 1, types=["progress_update"])
        assert [e.seq for e in page.events] == seqs and page.last_seq == seqs[0]
        with pytest.raises(Conflict):
            client.pause(task.id)  # pending tasks cannot be paused
        client.update_task(task.id, status="in_progress")
        paused = client.pause(task.id)
        assert (paused.status, paused.delivered) == ("paused", False)
        assert client.resume(task.id).status == "in_progress"
        assert client.cancel(task.id).status == "cancelled"
        assert client.next_task(agent.id) is None
        assert client.post_message(task.id, "queued").delivered is False
