"""The event log's rules, driven through the application layer's recorder
(:func:`taskline.service.recorder.record_events`, which applies :mod:`taskline.domain.effects`
and stores with :class:`EventLog`) on a real database (both backends).

Each test states one rule: gapless seqs, idempotency by id,
what an event changes on the task, the agent, the subtasks and the shared state, retention,
and all-or-nothing batches with the refused field named.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from taskline.domain.actors import Actor
from taskline.domain.errors import ConflictError, InvalidInputError, NotFoundError
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.models import AgentCreate, SectionCreate, SubtaskCreate, Task, TaskCreate
from taskline.domain.status import AgentStatus, TaskStatus
from taskline.service.recorder import Publish, record_events, record_read_free_group, start_log
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.events import EventLog
from taskline.store.tasks import TaskStore
from tests.support.server import LiveServer

E = WebSocketEventType


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend."""
    db = Database(database_url)
    await db.migrate()
    try:
        yield db
    finally:
        await db.dispose()


async def new_task(database: Database, **fields: Any) -> Task:
    async with database.write() as session:
        return await TaskStore(session).create(TaskCreate(title="t", **fields))


async def get_task(database: Database, task_id: str) -> Task:
    async with database.read() as session:
        return await TaskStore(session).get(task_id)


async def append(
    database: Database,
    task_id: str,
    events: Sequence[dict[str, Any]],
    *,
    keep_last: int | None = None,
    server: bool = False,
) -> list[WebSocketMessage]:
    async with database.write() as session:
        return await record_events(
            session,
            task_id,
            [EventIn.model_validate(e) for e in events],
            actor=Actor.system("test"),
            source="test",
            apply=not server,
            keep_last=keep_last,
        )


async def history(database: Database, task_id: str) -> list[WebSocketMessage]:
    async with database.read() as session:
        return await EventLog(session).read(task_id)


def progress(value: float, **extra: Any) -> dict[str, Any]:
    return {"event_type": "progress_update", "data": {"progress": value, **extra}}


def custom(name: str = "note", **extra: Any) -> dict[str, Any]:
    return {"event_type": "custom", "data": {"name": name, "value": 1}, **extra}


async def test_seqs_are_gapless_and_envelopes_match_the_stored_events(database: Database) -> None:
    """Seqs run 1, 2, 3 ... across batches; what append returns is what read returns later."""
    task = await new_task(database)
    sent_at = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    first = await append(database, task.id, [progress(0.1), custom()])
    second = await append(
        database,
        task.id,
        [
            custom(
                id="evt_attrib1",
                source="agent:a1",
                client_id="c1",
                run_id="run_1",
                parent_run_id="run_0",
                agent_id="agent_x",
                timestamp=sent_at.isoformat(),
            )
        ],
    )
    committed = first + second
    assert [m.seq for m in committed] == [1, 2, 3]
    assert [m.event_type for m in committed] == [E.PROGRESS_UPDATE, E.CUSTOM, E.CUSTOM]
    assert all(isinstance(m.event_type, WebSocketEventType) for m in committed)
    assert committed[0].data == {"progress": 0.1, "message": None, "confidence": None}
    assert committed[0].source == "test" and committed[0].task_id == task.id
    assert committed[0].id.startswith("evt_") and committed[0].timestamp.tzinfo is not None
    last = committed[2]
    assert (last.id, last.source, last.client_id, last.timestamp) == (
        "evt_attrib1",
        "agent:a1",
        "c1",
        sent_at,
    )
    assert (last.run_id, last.parent_run_id, last.agent_id) == ("run_1", "run_0", "agent_x")
    stored = await history(database, task.id)
    assert [m.model_dump() for m in stored] == [m.model_dump() for m in committed]
    async with database.read() as session:
        head = await EventLog(session).head(task.id)
    assert (head.first_seq, head.last_seq) == (1, 3)


async def test_a_log_that_was_started_continues_after_its_first_event(
    database: Database,
) -> None:
    """A log started with task_created at seq 1 continues at 2."""
    task = await new_task(database)
    async with database.write() as session:
        created = await start_log(
            session,
            task.id,
            EventIn(event_type=E.TASK_CREATED, data={}),
            actor=Actor.system("test"),
            source="api",
        )
    assert created.seq == 1
    assert [m.seq for m in await append(database, task.id, [progress(0.5)])] == [2]


async def test_progress_and_confidence_change_the_task(database: Database) -> None:
    """progress_update sets progress (and confidence when given); updated_at moves."""
    task = await new_task(database, confidence=0.2)
    await append(database, task.id, [progress(0.3)])
    after = await get_task(database, task.id)
    assert (after.progress, after.confidence) == (0.3, 0.2)
    assert after.updated_at > task.updated_at
    await append(database, task.id, [progress(0.6, confidence=0.9)])
    await append(
        database, task.id, [{"event_type": "confidence_update", "data": {"confidence": 0.4}}]
    )
    after = await get_task(database, task.id)
    assert (after.progress, after.confidence) == (0.6, 0.4)


async def test_same_id_on_the_same_task_returns_the_stored_event(database: Database) -> None:
    """Re-sending an id stores nothing and returns the stored envelope; progress is unchanged."""
    task = await new_task(database)
    [first] = await append(database, task.id, [progress(0.2, message="a") | {"id": "evt_one"}])
    [again] = await append(database, task.id, [progress(0.9) | {"id": "evt_one"}])
    assert again.model_dump() == first.model_dump()
    assert (await get_task(database, task.id)).progress == 0.2
    mixed = await append(
        database,
        task.id,
        [custom(id="evt_two"), progress(0.4) | {"id": "evt_one"}, custom(id="evt_two")],
    )
    # A repeat inside one batch is stored once and reported once.
    assert [(m.id, m.seq) for m in mixed] == [("evt_two", 2), ("evt_one", 1)]
    assert [m.seq for m in await history(database, task.id)] == [1, 2]


async def test_same_id_on_another_task_is_a_conflict(database: Database) -> None:
    """An id used on task A cannot be used on task B; B's batch stores nothing."""
    a, b = await new_task(database), await new_task(database)
    await append(database, a.id, [custom(id="evt_taken")])
    with pytest.raises(ConflictError, match="evt_taken"):
        await append(database, b.id, [progress(0.5), custom(id="evt_taken")])
    assert await history(database, b.id) == []
    assert (await get_task(database, b.id)).progress == 0.0


async def test_unknown_task_is_not_found(database: Database) -> None:
    """Publishing to a task that does not exist raises NotFoundError, even for a batch that
    would be refused anyway, and stores nothing."""
    for events in (
        [progress(0.5)],
        [progress(1.5)],
        [custom(id="evt_1")],
        [{"event_type": "task_started"}],
        [{"event_type": "heartbeat"}],
    ):
        with pytest.raises(NotFoundError):
            await append(database, "task_missing", events)
    async with database.read() as session:
        assert await EventLog(session).count() == 0


async def test_refused_events_name_their_field_and_store_nothing(database: Database) -> None:
    """A bad event anywhere refuses the whole batch; the error names ``events.N...``."""
    task = await new_task(database)
    await append(database, task.id, [progress(0.1)])
    cases = [
        ([progress(0.5), progress(1.5)], "events.1.data.progress"),
        ([custom(), {"event_type": "tool_call.start", "data": {"name": "x"}}], None),
        ([progress(0.5), {"event_type": "heartbeat"}], "events.1.event_type"),
        ([{"event_type": "task_created"}], "events.0.event_type"),
        ([{"event_type": "task_deleted"}], "events.0.event_type"),
    ]
    for events, field in cases:
        with pytest.raises(InvalidInputError) as caught:
            await append(database, task.id, events)
        assert caught.value.field == (field or "events.1.data.tool_call_id")
    assert [m.seq for m in await history(database, task.id)] == [1]
    assert (await get_task(database, task.id)).progress == 0.1


async def test_status_events_go_through_the_state_machine(database: Database) -> None:
    """Status events move the task, stamp its times, and refuse illegal moves."""
    task = await new_task(database)
    await append(database, task.id, [{"event_type": "task_started"}])
    started = await get_task(database, task.id)
    assert started.status == TaskStatus.IN_PROGRESS and started.started_at is not None
    await append(database, task.id, [{"event_type": "task_started"}])  # same status: no-op
    await append(database, task.id, [{"event_type": "task_paused"}])
    await append(database, task.id, [{"event_type": "task_resumed"}])
    await append(database, task.id, [{"event_type": "task_completed", "data": {"result": [1]}}])
    done = await get_task(database, task.id)
    assert (done.status, done.progress, done.result) == (TaskStatus.COMPLETED, 1.0, [1])
    assert done.started_at == started.started_at and done.completed_at is not None
    with pytest.raises(InvalidInputError) as caught:
        await append(database, task.id, [custom(), {"event_type": "task_paused"}])
    assert caught.value.field == "events.1"
    assert (await get_task(database, task.id)).status == TaskStatus.COMPLETED

    other = await new_task(database)
    await append(
        database,
        other.id,
        [{"event_type": "task_started"}, {"event_type": "task_failed", "data": {"error": "boom"}}],
    )
    failed = await get_task(database, other.id)
    assert (failed.status, failed.result) == (TaskStatus.FAILED, {"error": "boom"})
    assert failed.completed_at is not None
    await append(database, other.id, [{"event_type": "task_started"}])
    reopened = await get_task(database, other.id)
    assert reopened.status == TaskStatus.IN_PROGRESS and reopened.completed_at is None


async def test_agent_status_events_change_the_agent(database: Database) -> None:
    """agent_status_change updates the agent and records its previous status."""
    task = await new_task(database)
    async with database.write() as session:
        agent = await AgentStore(session).create(AgentCreate(name="a"))
    [event] = await append(
        database,
        task.id,
        [
            {
                "event_type": "agent_status_change",
                "data": {"agent_id": agent.id, "status": "working"},
            }
        ],
    )
    assert event.data["previous"] == "idle" and event.data["status"] == "working"
    async with database.read() as session:
        changed = await AgentStore(session).get(agent.id)
    assert changed.status == AgentStatus.WORKING and changed.current_task_id == task.id
    assert changed.last_seen_at is not None and changed.updated_at > agent.updated_at
    with pytest.raises(InvalidInputError) as caught:
        await append(
            database,
            task.id,
            [
                custom(),
                {
                    "event_type": "agent_status_change",
                    "data": {"agent_id": "agent_none", "status": "idle"},
                },
            ],
        )
    assert caught.value.field == "events.1.data.agent_id"


async def test_state_snapshots_and_patches_carry_versions(database: Database) -> None:
    """Each snapshot or patch adds one to the version; a patch that does not apply is refused
    with nothing changed, even by the events before it in the batch."""
    task = await new_task(database)
    committed = await append(
        database,
        task.id,
        [
            {"event_type": "state.snapshot", "data": {"snapshot": {"files": []}}},
            {
                "event_type": "state.patch",
                "data": {"patch": [{"op": "add", "path": "/files/-", "value": "a.md"}]},
            },
        ],
    )
    assert [m.data["version"] for m in committed] == [1, 2]
    with pytest.raises(InvalidInputError) as caught:
        await append(
            database,
            task.id,
            [
                {"event_type": "state.snapshot", "data": {"snapshot": {"other": 1}}},
                {"event_type": "state.patch", "data": {"patch": [{"op": "remove", "path": "/x"}]}},
            ],
        )
    assert caught.value.field == "events.1.data.patch.0"
    async with database.read() as session:
        state = await EventLog(session).state(task.id)
    assert (state.document, state.version) == ({"files": ["a.md"]}, 2)
    [patched] = await append(
        database,
        task.id,
        [
            {
                "event_type": "state.patch",
                "data": {"patch": [{"op": "replace", "path": "/files/0", "value": "b.md"}]},
            }
        ],
    )
    assert patched.data["version"] == 3
    async with database.read() as session:
        state = await EventLog(session).state(task.id)
    assert (state.document, state.version) == ({"files": ["b.md"]}, 3)


async def test_subtask_events_tick_subtasks_of_this_task_only(database: Database) -> None:
    """subtask_updated with ``done`` ticks the subtask and names its section."""
    sections = [SectionCreate(title="s", subtasks=[SubtaskCreate(title="x")])]
    task = await new_task(database, sections=sections)
    other = await new_task(database, sections=sections)
    subtask = task.sections[0].subtasks[0]
    [event] = await append(
        database,
        task.id,
        [{"event_type": "subtask_updated", "data": {"subtask_id": subtask.id, "done": True}}],
    )
    assert event.data["section_id"] == task.sections[0].id
    assert (await get_task(database, task.id)).sections[0].subtasks[0].done is True
    with pytest.raises(InvalidInputError) as caught:
        await append(
            database,
            other.id,
            [{"event_type": "subtask_updated", "data": {"subtask_id": subtask.id, "done": False}}],
        )
    assert caught.value.field == "events.0.data.subtask_id"
    assert (await get_task(database, task.id)).sections[0].subtasks[0].done is True


async def test_retention_keeps_the_newest_events(database: Database) -> None:
    """With keep_last=3 only the newest three events stay; seqs keep counting."""
    task = await new_task(database)
    for i in range(4):
        await append(database, task.id, [progress(i / 10), custom()], keep_last=3)
    stored = await history(database, task.id)
    assert [m.seq for m in stored] == [6, 7, 8]
    await append(
        database, task.id, [custom(id="evt_kept"), {"event_type": "task_started"}], keep_last=3
    )
    await append(database, task.id, [custom()] * 5, keep_last=3)
    stored = await history(database, task.id)
    assert [m.seq for m in stored] == [13, 14, 15]
    async with database.read() as session:
        head = await EventLog(session).head(task.id)
    assert (head.first_seq, head.last_seq) == (13, 15)
    async with database.write() as session:
        assert await EventLog(session).trim(task.id, keep_last=1) == 2
        assert await EventLog(session).trim(task.id, keep_last=1) == 0
    assert [m.seq for m in await history(database, task.id)] == [15]


async def test_a_task_without_a_log_gets_one_at_its_first_event(database: Database) -> None:
    """Seeded or imported tasks have no log row: the first append creates it at seq 1."""
    plain, with_id = await new_task(database), await new_task(database)
    assert [m.seq for m in await append(database, plain.id, [custom(), custom()])] == [1, 2]
    assert [m.seq for m in await append(database, with_id.id, [custom(id="evt_a")])] == [1]
    assert [m.seq for m in await append(database, with_id.id, [custom()])] == [2]
    async with database.read() as session:
        head = await EventLog(session).head(plain.id)
    assert (head.first_seq, head.last_seq) == (1, 2)


async def test_server_events_skip_the_task_checks(database: Database) -> None:
    """server=True logs server-only types and status events without applying them."""
    task = await new_task(database)
    committed = await append(
        database,
        task.id,
        [{"event_type": "task_created"}, {"event_type": "task_completed"}],
        server=True,
    )
    assert [m.seq for m in committed] == [1, 2]
    assert (await get_task(database, task.id)).status == TaskStatus.PENDING
    async with database.write() as session:
        await TaskStore(session).delete(task.id)
    [deleted] = await append(database, task.id, [{"event_type": "task_deleted"}], server=True)
    assert deleted.seq == 3


async def test_concurrent_resends_of_one_id_store_it_once(server: LiveServer) -> None:
    """Ten publishers sending the same event id at once all get the same seq back."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        task_id = (await http.post("/api/v1/tasks/", json={"title": "t"})).json()["id"]
        url = f"/api/v1/tasks/{task_id}/events"
        body = custom(id="evt_racing")
        responses = await asyncio.gather(*(http.post(url, json=body) for _ in range(10)))
        assert {r.status_code for r in responses} == {200}
        assert {tuple(r.json()["seqs"]) for r in responses} == {(2,)}
        events = (await http.get(url)).json()["events"]
    assert [e["seq"] for e in events] == [1, 2]


async def test_concurrent_publishers_of_every_kind_keep_seqs_gapless(server: LiveServer) -> None:
    """Publishers of plain events, of events with ids and of status and state events, all at
    once on one task: every event is stored once, with seqs 1..N and no gap or repeat."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        task_id = (await http.post("/api/v1/tasks/", json={"title": "t"})).json()["id"]
        url = f"/api/v1/tasks/{task_id}/events"

        async def plain(n: int) -> None:
            for i in range(8):
                response = await http.post(url, json=[progress(i / 10), custom(f"p{n}")])
                assert response.status_code == 200, response.text

        async def with_ids(n: int) -> None:
            for i in range(8):
                body = [custom(id=f"evt_{n}_{i}"), custom(id=f"evt_{n}_{i}_b")]
                response = await http.post(url, json=body)
                assert response.status_code == 200, response.text

        async def stateful(n: int) -> None:
            for i in range(8):
                body = [
                    {"event_type": "task_started"},
                    {"event_type": "state.snapshot", "data": {"snapshot": {"n": n, "i": i}}},
                ]
                response = await http.post(url, json=body)
                assert response.status_code == 200, response.text

        await asyncio.gather(*(kind(n) for n in range(3) for kind in (plain, with_ids, stateful)))
        events = (await http.get(url, params={"limit": 1000})).json()["events"]
        state = (await http.get(f"/api/v1/tasks/{task_id}/state")).json()
    assert [e["seq"] for e in events] == list(range(1, 1 + 1 + 3 * 3 * 8 * 2))
    assert state["version"] == 3 * 8


def count_publish_statements(server: LiveServer, http: httpx.Client, url: str, body: Any) -> int:
    """Statements the server's write engine runs while one publish request is handled."""
    assert server.app is not None
    engine = server.app.state.database._write_engine.sync_engine
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert http.post(url, json=body).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def test_publishing_plain_events_takes_a_fixed_few_statements(quiet_server: LiveServer) -> None:
    """One new progress event or a hundred: begin, update the task, move the log head,
    insert the events (the publish hot path reads nothing before it writes)."""
    with httpx.Client(base_url=quiet_server.url) as http:
        task_id = http.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
        url = f"/api/v1/tasks/{task_id}/events"
        one = count_publish_statements(quiet_server, http, url, progress(0.5))
        many = count_publish_statements(quiet_server, http, url, [custom()] * 100)
        with_id = count_publish_statements(quiet_server, http, url, custom(id="evt_counted"))
    assert one == many == 4
    assert with_id == 6  # begin, lock task and log, look up the id, insert, update task and log


async def test_read_free_publishes_of_many_tasks_are_stored_together(database: Database) -> None:
    """Several read-free publishes of several tasks stored at once (the group commit's
    batch path): each gets its own seqs in arrival order, a refused one (an unknown task, a
    bad event) gets its error and stores nothing, the tasks' figures are the last ones
    published, and the whole group takes a fixed few statements."""
    a, b = await new_task(database), await new_task(database)
    publishes = [
        Publish(a.id, [EventIn.model_validate(progress(0.1))], Actor.agent("agent_a"), "s1"),
        Publish(b.id, [EventIn.model_validate(custom())] * 2, Actor.agent("agent_b"), "s2"),
        Publish("task_missing", [EventIn.model_validate(custom())], Actor.anonymous(), None),
        Publish(
            a.id,
            [EventIn.model_validate({"event_type": "progress_update", "data": {"progress": 2}})],
            Actor.anonymous(),
            None,
        ),
        Publish(
            a.id, [EventIn.model_validate(progress(0.7, confidence=0.4))], Actor.anonymous(), None
        ),
    ]
    statements: list[str] = []
    engine = database._write_engine.sync_engine
    listener = lambda *args: statements.append(str(args[2]))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        async with database.write() as session:
            outcomes = await record_read_free_group(session, publishes)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    first, second, missing, refused, last = outcomes
    assert isinstance(first, list) and [m.seq for m in first] == [1]
    assert first[0].actor == "agent:agent_a" and first[0].source == "s1"
    assert isinstance(second, list) and [m.seq for m in second] == [1, 2]
    assert isinstance(missing, NotFoundError)
    assert isinstance(refused, InvalidInputError) and refused.field == "events.0.data.progress"
    assert isinstance(last, list) and [m.seq for m in last] == [2]
    assert [m.seq for m in await history(database, a.id)] == [1, 2]
    assert [m.model_dump() for m in await history(database, b.id)] == [
        m.model_dump() for m in second
    ]
    after = await get_task(database, a.id)
    assert (after.progress, after.confidence) == (0.7, 0.4)
    # begin, lock the tasks and logs, create the logs they lack (new tasks), set the tasks'
    # columns (two sets of columns: with and without confidence), insert, move the heads
    assert len(statements) <= 8, statements


async def test_concurrent_single_event_publishes_share_commits_and_keep_order(
    server: LiveServer,
) -> None:
    """64 publishers posting one event at a time on 8 tasks: every answer has the seq its
    event got, each task's log is gapless and holds every event once, and the server
    grouped publishes into fewer transactions than requests."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        tasks = [
            (await http.post("/api/v1/tasks/", json={"title": f"t{n}"})).json()["id"]
            for n in range(8)
        ]
        sent: dict[str, dict[str, int]] = {t: {} for t in tasks}

        async def publisher(n: int) -> None:
            task_id = tasks[n % len(tasks)]
            for i in range(10):
                body = {"event_type": "custom", "data": {"name": f"p{n}", "value": i}}
                response = await http.post(f"/api/v1/tasks/{task_id}/events", json=body)
                assert response.status_code == 200, response.text
                answer = response.json()
                sent[task_id][answer["ids"][0]] = answer["seqs"][0]

        await asyncio.gather(*(publisher(n) for n in range(64)))
        for task_id in tasks:
            events = (await http.get(f"/api/v1/tasks/{task_id}/events")).json()["events"]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert {e["id"]: e["seq"] for e in events[1:]} == sent[task_id]
            assert len(sent[task_id]) == 80
    assert server.app is not None
    commits = server.app.state.services.commits
    assert commits.requests >= 640 and commits.groups < commits.requests
