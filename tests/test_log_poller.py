"""The log poller of one process, in-process on a real database (both backends): what another
process committed reaches this one's followers once, whichever way it comes first (a poll,
or the notifier's late copy), and a follower that connects later starts at its head.

"Another process" is the store itself: events recorded straight into the log, which this
process's bus never heard of (as when Redis is down). The poll is called directly; the loop
around it (when to poll) runs in tests/test_redis_down_scale.py against real processes.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskline.bus import EventBus
from taskline.domain.actors import Actor
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.domain.models import TaskCreate
from taskline.realtime import ConnectionManager, Following, LogPoller
from taskline.service.recorder import record_events
from taskline.store.database import Database
from taskline.store.events import EventLog
from taskline.store.tasks import TaskStore


class Process:
    """This process's bus, connections and poller over ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.connections = ConnectionManager(database, heartbeat_interval=60)

        async def persist(task_id: str, batch: list[EventIn]) -> list[WebSocketMessage]:
            raise AssertionError("this test commits through the store")

        self.bus = EventBus(persist=persist)
        self.bus.add_listener(self.connections.on_committed)
        self.poller = LogPoller(database, self.bus, self.connections, read_limit=3)


@pytest.fixture
async def process(database_url: str) -> AsyncIterator[Process]:
    database = Database(database_url)
    await database.migrate()
    here = Process(database)
    await here.bus.start()
    await here.connections.start()
    await here.poller.start()
    try:
        yield here
    finally:
        await here.poller.stop()
        await here.connections.stop()
        await here.bus.close()
        await database.dispose()


async def new_task(database: Database) -> str:
    async with database.write() as session:
        return (await TaskStore(session).create(TaskCreate(title="t"))).id


async def commit_elsewhere(database: Database, task_id: str, count: int) -> list[WebSocketMessage]:
    """Commit ``count`` progress updates the way another process would (no bus here)."""
    events = [
        EventIn.model_validate({"event_type": "progress_update", "data": {"progress": 0.5}})
        for _ in range(count)
    ]
    async with database.write() as session:
        return await record_events(
            session, task_id, events, actor=Actor.system("test"), source="test"
        )


def seqs(following: Following) -> list[int]:
    return [d.message.seq for d in following.drain() if d.message and d.message.seq is not None]


async def test_a_poll_hands_other_processes_events_once(process: Process) -> None:
    """Events committed elsewhere reach the followers by a poll (read in statements of
    ``read_limit``), once; a second poll and the notifier's late copy add nothing."""
    first, second = await new_task(process.database), await new_task(process.database)
    head = (await commit_elsewhere(process.database, first, 2))[-1].seq or 0
    async with (
        process.connections.follow(first) as on_first,
        process.connections.follow(second) as on_second,
    ):
        assert seqs(on_first) == [] and seqs(on_second) == []
        committed = await commit_elsewhere(process.database, first, 5)
        other = await commit_elsewhere(process.database, second, 1)

        assert await process.poller.poll() == 6
        assert seqs(on_first) == list(range(head + 1, head + 6))
        assert seqs(on_second) == [other[0].seq]
        assert await process.poller.poll() == 0

        # Redis back: pub/sub brings a copy of the last two and one new event
        later = await commit_elsewhere(process.database, first, 1)
        await process.bus.dispatch([*committed[-2:], *later])
        assert seqs(on_first) == [later[0].seq]
        stats: dict[str, Any] = process.bus.get_stats()
        assert stats["events_received_from_log"] == 6
        assert stats["duplicates_skipped"] == 2
        assert [m.seq for m in process.bus.get_event_history(first)] == [
            *range(head + 1, head + 6),
            later[0].seq,
        ]


async def test_a_poll_skips_what_was_delivered_here_and_tasks_nobody_follows(
    process: Process,
) -> None:
    """What reached this process through its bus is not handed again; a task with no
    follower here is not read at all."""
    followed, unfollowed = await new_task(process.database), await new_task(process.database)
    async with process.connections.follow(followed) as following:
        delivered = await commit_elsewhere(process.database, followed, 2)
        await process.bus.dispatch(delivered)  # it came through the notifier
        await commit_elsewhere(process.database, unfollowed, 3)
        assert await process.poller.poll() == 0
        assert seqs(following) == [m.seq for m in delivered]
    assert await process.poller.poll() == 0  # nobody follows anything: nothing is read


async def test_read_after_reads_several_tasks_in_one_statement(process: Process) -> None:
    """``EventLog.read_after``: each task past its own cursor, task by task in seq order,
    at most ``limit`` in all."""
    one, two = sorted([await new_task(process.database), await new_task(process.database)])
    await commit_elsewhere(process.database, one, 3)
    await commit_elsewhere(process.database, two, 3)
    async with process.database.read() as session:
        log = EventLog(session)
        read = await log.read_after({one: 1, two: 2}, limit=10)
        limited = await log.read_after({one: 0, two: 0}, limit=4)
        assert await log.read_after({}, limit=10) == []
    assert [(m.task_id, m.seq) for m in read] == [(one, 2), (one, 3), (two, 3)]
    assert [(m.task_id, m.seq) for m in limited] == [(one, 1), (one, 2), (one, 3), (two, 1)]
