"""SDK runs against a real server: the events a run records, failures, refusals, and people
steering the run (pause, resume, cancel, messages)."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from taskline.domain.events import WebSocketMessage
from taskline.sdk import (
    AsyncClient,
    Command,
    ConnectionReplacedError,
    EventRejected,
    HumanMessage,
    InvalidEvent,
    RunStateError,
)
from tests.support.server import LiveServer
from tests.support.waiting import async_holds_for, async_wait_until


@pytest.fixture
async def sdk(sqlite_server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(sqlite_server.url) as client:
        yield client


async def wait_until(predicate: Callable[[], bool], message: str = "the condition") -> None:
    await async_wait_until(predicate, message=message)


async def agent_status(sdk: AsyncClient, agent_id: str, status: str) -> None:
    async def has_status() -> bool:
        return (await sdk.get_agent(agent_id)).status == status

    await async_wait_until(has_status, message=f"agent {agent_id} to become {status}")


async def log_of(sdk: AsyncClient, task_id: str) -> list[WebSocketMessage]:
    return (await sdk.events(task_id)).events


def kinds(events: list[WebSocketMessage]) -> list[str]:
    return [e.event_type.value for e in events]


async def test_a_full_run_records_the_expected_events(sdk: AsyncClient) -> None:
    """Every run method logs its event, in order, with the data given, attributed to the run."""
    task = await sdk.create_task(
        "Review", sections=[{"title": "Files", "subtasks": [{"title": "a.md"}]}]
    )
    subtask_id = task.sections[0].subtasks[0].id
    async with sdk.run(task.id, agent="agent_full", name="Full") as run:
        progress_id = await run.progress(0.25, "Reading", confidence=0.5)
        async with run.tool_call("read_file", {"path": "a.md"}) as call:
            await asyncio.sleep(0.01)
            call.result = {"words": 120}
        async with run.message() as text:
            await text.write("Found ")
            await text.write("one file.")
        await run.state.snapshot({"done": []})
        await run.state.patch([{"op": "add", "path": "/done/-", "value": "a.md"}])
        await run.subtask(subtask_id).done()
        assert run.connections == 1
    await agent_status(sdk, "agent_full", "offline")

    log = await log_of(sdk, task.id)
    assert kinds(log) == [
        "task_created",
        "task_started",
        "agent_status_change",
        "progress_update",
        "tool_call.start",
        "tool_call.end",
        "message.start",
        "message.delta",
        "message.delta",
        "message.end",
        "state.snapshot",
        "state.patch",
        "subtask_updated",
        "task_completed",
        "agent_status_change",
        "agent_status_change",  # the hub logs the agent going offline when the run closes
    ]
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    by_run = log[1:15]
    assert {e.run_id for e in by_run} == {run.run_id}
    assert {e.agent_id for e in by_run} == {"agent_full"}
    assert log[3].id == progress_id
    assert log[3].data == {"progress": 0.25, "message": "Reading", "confidence": 0.5}
    start, end = log[4].data, log[5].data
    assert (start["name"], start["args"]) == ("read_file", {"path": "a.md"})
    assert end["tool_call_id"] == start["tool_call_id"] == call.tool_call_id
    assert end["result"] == {"words": 120} and end["error"] is None
    assert isinstance(end["duration_ms"], float) and end["duration_ms"] >= 10
    assert [e.data.get("delta") for e in log[7:9]] == ["Found ", "one file."]
    assert {e.data["message_id"] for e in log[6:10]} == {text.message_id}
    assert text.text == "Found one file."
    assert log[11].data["version"] == 2
    assert (log[12].data["subtask_id"], log[12].data["done"]) == (subtask_id, True)
    assert [e.data["status"] for e in (log[2], log[14], log[15])] == ["working", "idle", "offline"]

    finished = await sdk.get_task(task.id)
    assert (finished.status, finished.progress) == ("completed", 1.0)
    assert finished.sections[0].subtasks[0].done is True
    state = await sdk.state(task.id)
    assert (state.state, state.version) == ({"done": ["a.md"]}, 2)


async def test_complete_with_a_result_and_no_second_completion(sdk: AsyncClient) -> None:
    """complete(result) sets the task's result; leaving does not complete again; a run is
    used once and refuses reports after it ended."""
    task = await sdk.create_task("Report")
    run = sdk.run(task.id, agent="agent_result")
    async with run:
        await run.complete({"report": "# Findings"})
        with pytest.raises(RunStateError):
            await run.fail("too late")
    assert (await sdk.get_task(task.id)).result == {"report": "# Findings"}
    assert kinds(await log_of(sdk, task.id)).count("task_completed") == 1
    with pytest.raises(RunStateError):
        await run.progress(0.5)
    with pytest.raises(RunStateError):
        await run.__aenter__()


async def test_an_exception_in_a_tool_call_ends_it_and_fails_the_task(sdk: AsyncClient) -> None:
    """The tool call ends with the error, the task fails with it, the agent shows an error,
    and the exception propagates unchanged."""
    task = await sdk.create_task("Fragile")
    with pytest.raises(ValueError, match="bad input") as raised:
        async with (
            sdk.run(task.id, agent="agent_fragile") as run,
            run.tool_call("parse", {"text": "x"}) as call,
        ):
            raise ValueError("bad input")
    assert not getattr(raised.value, "__notes__", None)  # reporting the failure worked
    assert call.error == "ValueError: bad input"
    log = await log_of(sdk, task.id)
    assert kinds(log)[1:6] == [
        "task_started",
        "agent_status_change",
        "tool_call.start",
        "tool_call.end",
        "task_failed",
    ]
    end = log[4].data
    assert (end["error"], end["result"]) == ("ValueError: bad input", None)
    assert end["duration_ms"] >= 0
    assert log[5].data["error"] == "ValueError: bad input"
    assert log[6].data["status"] == "error"
    failed = await sdk.get_task(task.id)
    assert (failed.status, failed.result) == ("failed", {"error": "ValueError: bad input"})


async def test_an_exception_in_the_run_fails_the_task_and_reraises(sdk: AsyncClient) -> None:
    """An exception in the block gives task_failed with its text; the agent shows error."""
    task = await sdk.create_task("Crash")

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom):
        async with sdk.run(task.id, agent="agent_crash") as run:
            await run.progress(0.5)
            raise Boom("disk on fire")
    await agent_status(sdk, "agent_crash", "offline")
    log = await log_of(sdk, task.id)
    assert kinds(log)[-4:] == [
        "progress_update",
        "task_failed",
        "agent_status_change",
        "agent_status_change",
    ]
    failed = log[-3]
    assert (failed.data["error"], failed.run_id) == ("Boom: disk on fire", run.run_id)
    assert [e.data["status"] for e in log[-2:]] == ["error", "offline"]
    assert (await sdk.get_task(task.id)).status == "failed"


async def test_bad_events_are_refused_before_sending_or_reported_by_flush(
    sdk: AsyncClient,
) -> None:
    """Schema errors raise InvalidEvent at the call; a refusal only the server can judge (a
    patch that does not apply) raises EventRejected from the next flush, and stores nothing
    of its batch while later events still go through."""
    task = await sdk.create_task("Strict")
    async with sdk.run(task.id, agent="agent_strict") as run:
        with pytest.raises(InvalidEvent) as invalid:
            await run.progress(1.5)
        assert invalid.value.field == "data.progress"
        with pytest.raises(InvalidEvent):
            await run.emit("heartbeat", {})
        with pytest.raises(InvalidEvent):
            await run.emit("task_created", {})
        with pytest.raises(InvalidEvent):
            await run.state.patch([{"op": "add", "path": "/a"}])  # no value
        await run.flush()
        bad = await run.state.patch([{"op": "remove", "path": "/missing"}])
        with pytest.raises(EventRejected) as rejected:
            await run.flush()
        assert rejected.value.status == 422
        assert rejected.value.event_ids == [bad]
        assert rejected.value.task_id == task.id
        assert "does not apply" in rejected.value.detail
        await run.flush()  # reported once
        await run.progress(0.9)
    log = await log_of(sdk, task.id)
    assert bad not in {e.id for e in log}
    assert "progress_update" in kinds(log)
    assert (await sdk.get_task(task.id)).status == "completed"


async def test_starting_a_finished_task_is_refused_on_entry(sdk: AsyncClient) -> None:
    """A cancelled task cannot start: entering the run raises EventRejected (409-like 422)."""
    task = await sdk.create_task("Gone")
    await sdk.cancel(task.id)
    with pytest.raises(EventRejected) as rejected:
        async with sdk.run(task.id, agent="agent_late"):
            pytest.fail("the block must not run")
    assert "cancelled" in rejected.value.detail


async def test_pause_resume_message_and_cancel_reach_the_run(sdk: AsyncClient) -> None:
    """Commands from REST arrive on the agent connection: flags, wait_if_paused, callbacks."""
    task = await sdk.create_task("Steered")
    messages: list[HumanMessage] = []
    commands: list[Command] = []
    async with sdk.run(task.id, agent="agent_steered") as run:
        run.on_message(messages.append)
        run.on_command(commands.append)
        assert not run.paused and not run.cancelled

        paused = await sdk.pause(task.id)
        assert (paused.status, paused.delivered) == ("paused", True)
        await wait_until(lambda: run.paused)
        waiting = asyncio.create_task(run.wait_if_paused())
        # wait_if_paused reports "paused" before it starts waiting: once the server has that,
        # the waiter is waiting. That it keeps waiting can only be watched for a while.
        await agent_status(sdk, "agent_steered", "paused")
        await async_holds_for(
            lambda: not waiting.done(), 0.2, message="wait_if_paused waits while paused"
        )
        await sdk.resume(task.id)
        assert await asyncio.wait_for(waiting, 10) is True
        assert not run.paused

        posted = await sdk.post_message(task.id, "Also check the README", author="ana")
        assert posted.delivered is True
        await wait_until(lambda: bool(messages))
        assert (messages[0].content, messages[0].author, messages[0].id) == (
            "Also check the README",
            "ana",
            posted.id,
        )
        assert run.messages == messages

        await sdk.cancel(task.id)
        await wait_until(lambda: run.cancelled)
        assert await run.wait_if_paused() is False
    assert [c.command for c in commands] == ["pause", "resume", "message", "cancel"]
    assert {c.task_id for c in commands} == {task.id}
    log = await log_of(sdk, task.id)
    assert "task_completed" not in kinds(log)
    assert (await sdk.get_task(task.id)).status == "cancelled"
    statuses = [
        e.data["status"]
        for e in log
        if e.event_type == "agent_status_change" and e.run_id == run.run_id
    ]
    assert statuses == ["working", "paused", "working", "idle"]


async def test_a_message_posted_before_the_run_starts_reaches_it(sdk: AsyncClient) -> None:
    """A message queued for an offline agent is handed to the run of that task, and a late
    on_message callback still sees it; async callbacks run as tasks."""
    agent = await sdk.create_agent("Queued", id="agent_queued")
    task = await sdk.create_task("Waiting", assigned_agent_id=agent.id)
    assert (await sdk.post_message(task.id, "Start with chapter 2")).delivered is False
    seen: list[str] = []

    async def remember(message: HumanMessage) -> None:
        await asyncio.sleep(0)
        seen.append(message.content)

    async with sdk.run(task.id, agent=agent) as run:
        assert [m.content for m in run.messages] == ["Start with chapter 2"]
        run.on_message(remember)
        await wait_until(lambda: seen == ["Start with chapter 2"])


async def test_a_paused_task_completes_through_a_resume(sdk: AsyncClient) -> None:
    """Leaving a run while its task is paused resumes it first, then completes it."""
    task = await sdk.create_task("Forgotten pause")
    async with sdk.run(task.id, agent="agent_forgetful") as run:
        await sdk.pause(task.id)
        await wait_until(lambda: run.paused)
    log = kinds(await log_of(sdk, task.id))
    assert log.index("task_paused") < log.index("task_resumed") < log.index("task_completed")
    assert (await sdk.get_task(task.id)).status == "completed"


async def test_two_runs_of_one_agent_share_its_connection(sdk: AsyncClient) -> None:
    """Two runs of the same agent in one client share one connection; connect_agent keeps
    the agent online between runs, and next_task hands out its pending work."""
    first = await sdk.create_task("One", assigned_agent_id=None)
    agent = await sdk.create_agent("Worker", id="agent_worker")
    queued = await sdk.create_task("Two", assigned_agent_id=agent.id)
    async with sdk.connect_agent(agent) as connection:
        await wait_until(lambda: connection.connected)
        async with (
            sdk.run(first.id, agent=agent.id) as one,
            sdk.run(queued.id, agent=agent.id) as two,
        ):
            await asyncio.gather(one.progress(0.5), two.progress(0.5))
            assert one.connections == two.connections == 1
        assert (await sdk.get_agent(agent.id)).status == "idle"
        assert await sdk.next_task(agent.id) is None
    await agent_status(sdk, agent.id, "offline")
    for task_id in (first.id, queued.id):
        assert (await sdk.get_task(task_id)).status == "completed"


async def test_a_second_connection_for_the_agent_replaces_the_run_without_a_fight(
    sqlite_server: LiveServer,
) -> None:
    """When another client connects the same agent, the run's connection fails for good
    (ConnectionReplacedError) instead of reconnecting and evicting the other one."""
    async with AsyncClient(sqlite_server.url) as first, AsyncClient(sqlite_server.url) as other:
        task = await first.create_task("Contested")
        with pytest.raises(ConnectionReplacedError) as replaced:
            async with (
                first.run(task.id, agent="agent_twin") as run,
                other.connect_agent("agent_twin") as twin,
            ):
                await wait_until(lambda: twin.connected)
                for _ in range(250):
                    await asyncio.sleep(0.02)
                    await run.progress(0.5)
                pytest.fail("publishing should have failed")
        assert replaced.value.agent_id == "agent_twin"
        assert any("reporting the failure also failed" in n for n in replaced.value.__notes__)


async def test_the_async_face_has_the_structure_methods(sdk: AsyncClient) -> None:
    """Sections and subtasks through AsyncClient; REST publish takes dicts and EventIn."""
    from taskline.domain.events import EventIn

    task = await sdk.create_task("Async structure")
    section = await sdk.add_section(task.id, "Read", ["a.md"])
    extra = await sdk.add_subtask(task.id, section.id, "b.md", position=0)
    assert [s.title for s in (await sdk.get_task(task.id)).sections[0].subtasks] == [
        "b.md",
        "a.md",
    ]
    assert (await sdk.toggle_subtask(task.id, extra.id)).done is True
    assert (await sdk.update_subtask(task.id, extra.id, notes="read")).notes == "read"
    assert (await sdk.rename_section(task.id, section.id, "Reading")).title == "Reading"
    await sdk.delete_subtask(task.id, extra.id)
    await sdk.delete_section(task.id, section.id)
    assert (await sdk.get_task(task.id)).sections == []
    seqs = await sdk.publish(
        task.id,
        [
            {"event_type": "step.start", "data": {"name": "x"}},
            EventIn(event_type="step.end", data={"name": "x"}),
        ],
    )
    stored = (await sdk.events(task.id, since=seqs[0] - 1)).events[0]
    again = await sdk.publish(
        task.id, {"id": stored.id, "event_type": "step.start", "data": {"name": "x"}}
    )
    assert again == seqs[:1]  # the same id stores nothing new
    with pytest.raises(TypeError):
        await sdk.publish(task.id, [stored])  # type: ignore[list-item,unused-ignore]


async def test_a_connected_agent_sees_commands_no_run_has_claimed(sdk: AsyncClient) -> None:
    """connect_agent's on_command shows a message for an assigned task nobody works on yet;
    the run started for it afterwards still receives the message."""
    agent = await sdk.create_agent("Listener", id="agent_listener")
    task = await sdk.create_task("Assigned", assigned_agent_id=agent.id)
    heard: list[Command] = []
    async with sdk.connect_agent(agent) as connection:
        connection.on_command(heard.append)
        await wait_until(lambda: connection.connected)
        assert (await sdk.post_message(task.id, "please start")).delivered is True
        await wait_until(lambda: bool(heard))
        assert (heard[0].command, heard[0].task_id) == ("message", task.id)
        async with sdk.run(task.id, agent=agent) as run:
            assert [m.content for m in run.messages] == ["please start"]
