"""Redis down mid-run, at scale: three real ``taskline serve`` processes on one PostgreSQL
database, a private ``redis-server`` killed while three publishers (one per process) post
steadily and 45 subscribers (15 per process, on every task) read, then started again on the
same port.

While Redis is down each process polls the log heads of the tasks it serves
(``TASKLINE_REDIS_DOWN_POLL``), so subscribers keep getting the other processes' events;
``/health`` says ``degraded: ["redis"]`` then ``ok``; at the end every subscriber got every
seq once, in order, and the board viewer was told to reload.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis
from tests.support.redis_server import private_redis as private_redis  # the fixture
from tests.support.waiting import WAIT, async_wait_until
from tests.support.ws import open_ws, receive_until

NODES = 3
SUBSCRIBERS_PER_TASK_PER_NODE = 5  # 3 tasks x 3 nodes x 5 = 45 subscribers
#: Seconds between two posts of one publisher: a steady load, not a synchronisation.
PACE = 0.03
#: Events each publisher posts while Redis is down (about 10 s of the run on this machine).
DURING_OUTAGE = 150


@pytest.fixture
def nodes(
    pg_database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Three server processes on one PostgreSQL database sharing the private Redis."""
    empty_database(pg_database_url)
    env = {
        "TASKLINE_REDIS_URL": private_redis.url,
        "TASKLINE_AUTH": "false",
        "TASKLINE_REDIS_DOWN_POLL": "0.5",
    }
    servers = [
        ServerProcess(
            pg_database_url,
            tmp_path / f"node{n}.log",
            **env,
            # the first applies the migrations; the others find them applied
            TASKLINE_MIGRATE_ON_START="true" if n == 0 else "false",
        )
        for n in range(NODES)
    ]
    try:
        for server in servers:
            server.start(timeout=2 * WAIT)  # a loaded machine starts slowly
        yield servers
    finally:
        for server in servers:
            server.stop()


class Reader:
    """One subscriber: every task event it receives, by seq, and its starting head."""

    def __init__(self, websocket: ClientConnection, node: int, task_id: str, head: int) -> None:
        self.websocket = websocket
        self.node = node
        self.task_id = task_id
        self.head = head
        self.seqs: list[int] = []
        self.events: list[tuple[str, int]] = []  #: (task id, seq) of every task event
        self.notices: list[dict[str, Any]] = []

    async def run(self) -> None:
        async for raw in self.websocket:
            items = json.loads(raw)
            for message in items if isinstance(items, list) else [items]:
                if message.get("seq") is not None:
                    self.seqs.append(message["seq"])
                    self.events.append((message["task_id"], message["seq"]))
                else:
                    self.notices.append(message)

    def saw(self, task_id: str, seq: int) -> bool:
        return any(t == task_id and s >= seq for t, s in self.events)

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else self.head


class Publisher:
    """Posts one progress update at a time to one task through one node, until stopped."""

    def __init__(self, node: ServerProcess, task_id: str) -> None:
        self.node = node
        self.task_id = task_id
        self.last_seq = 0
        self.posted = 0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.node.url, timeout=30) as client:
            while not self.stopping.is_set():
                answer = await client.post(
                    f"/api/v1/tasks/{self.task_id}/events",
                    json={"event_type": "progress_update", "data": {"progress": 0.5}},
                )
                # committed whether Redis is up or not: the usual answer, never an error
                assert answer.status_code in {200, 201}, answer.text
                self.last_seq = answer.json()["last_seq"]
                self.posted += 1
                await asyncio.sleep(PACE)


async def statuses(servers: list[ServerProcess]) -> list[dict[str, Any]]:
    """``/health`` of every node; each must answer 200 whether Redis is up or not."""
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(*(client.get(f"{s.url}/health") for s in servers))
    for answer in answers:
        assert answer.status_code == 200, answer.text
    return [a.json() for a in answers]


async def wait_for_health(servers: list[ServerProcess], status: str) -> list[dict[str, Any]]:
    seen: list[list[dict[str, Any]]] = []

    async def reached() -> list[dict[str, Any]] | None:
        bodies = await statuses(servers)
        seen.append(bodies)
        return bodies if all(b["status"] == status for b in bodies) else None

    return await async_wait_until(
        reached, message=lambda: f"every node's /health to say {status!r}; last: {seen[-1:]}"
    )


async def test_subscribers_on_every_process_keep_receiving_while_redis_is_down(
    nodes: list[ServerProcess], private_redis: PrivateRedis
) -> None:
    """Kill Redis mid-run: subscribers on other processes still get every event (from the
    log, within the poll interval); Redis back: nothing lost, nothing duplicated."""
    async with httpx.AsyncClient(base_url=nodes[0].url, timeout=30) as client:
        task_ids = [
            (await client.post("/api/v1/tasks/", json={"title": f"outage {n}"})).json()["id"]
            for n in range(NODES)
        ]
    readers: list[Reader] = []
    sockets = AsyncExitStack()
    for node_index, node in enumerate(nodes):
        for task_id in task_ids:
            for _ in range(SUBSCRIBERS_PER_TASK_PER_NODE):
                websocket = await sockets.enter_async_context(
                    open_ws(f"{node.ws_url}/ws/tasks/{task_id}")
                )
                hello = (await receive_until(websocket, "connection_established"))[-1]
                readers.append(Reader(websocket, node_index, task_id, hello["data"]["last_seq"]))
    board_socket = await sockets.enter_async_context(open_ws(f"{nodes[2].ws_url}/ws/board"))
    await receive_until(board_socket, "connection_established")
    board = Reader(board_socket, 2, "", 0)
    reading = [asyncio.create_task(r.run()) for r in [*readers, board]]
    # publisher n posts to task n through node n: every task's events cross processes
    publishers = [Publisher(nodes[n], task_ids[n]) for n in range(NODES)]
    publishing = [asyncio.create_task(p.run()) for p in publishers]
    by_task = {p.task_id: p for p in publishers}

    def everyone_reached(marks: dict[str, int]) -> bool:
        return all(r.last >= marks[r.task_id] for r in readers)

    def behind(marks: dict[str, int]) -> str:
        late = [(r.node, r.task_id, r.last, marks[r.task_id]) for r in readers]
        return f"every subscriber to reach {marks}; (node, task, at, mark): {late[:6]}"

    try:
        # 1. Redis up: live through pub/sub
        await async_wait_until(lambda: all(p.posted >= 20 for p in publishers), message="load")
        marks = {p.task_id: p.last_seq for p in publishers}
        await async_wait_until(lambda: everyone_reached(marks), message=lambda: behind(marks))

        # 2. Redis killed: every node degraded, publishing still commits
        private_redis.kill()
        for body in await wait_for_health(nodes, "degraded"):
            assert body["degraded"] == ["redis"]
        posted_at_outage = {p.task_id: p.posted for p in publishers}
        # what each publisher commits from now on crosses no Redis: a subscriber on another
        # process sees it (from the log poll) within the deadline, while Redis is still down
        await async_wait_until(
            lambda: all(p.posted >= posted_at_outage[p.task_id] + 20 for p in publishers),
            message="publishes during the outage",
        )
        marks = {p.task_id: p.last_seq for p in publishers}
        await async_wait_until(
            lambda: everyone_reached(marks), message=lambda: behind(marks), timeout=WAIT / 2
        )
        # the board viewer on node 2 sees node 0's task too (node 2 follows it, so polls it)
        await async_wait_until(
            lambda: board.saw(task_ids[0], marks[task_ids[0]]),
            message="the board viewer on node 2 to see node 0's events during the outage",
        )
        assert not private_redis.answers(), "the outage must still be on"
        cross = [r for r in readers if r.node != task_ids.index(r.task_id)]
        assert cross and all(r.last >= marks[r.task_id] for r in cross)
        # keep Redis down for the rest of the outage's publishing (~10 s of the run)
        await async_wait_until(
            lambda: all(
                p.posted >= posted_at_outage[p.task_id] + DURING_OUTAGE for p in publishers
            ),
            message="the outage's publishes",
        )
        marks = {p.task_id: p.last_seq for p in publishers}
        await async_wait_until(lambda: everyone_reached(marks), message=lambda: behind(marks))
        assert all(b["status"] == "degraded" for b in await statuses(nodes))

        # 3. Redis back on the same port: ok again, live through pub/sub again
        private_redis.start()
        for body in await wait_for_health(nodes, "ok"):
            assert body["degraded"] == []
        posted_at_return = {p.task_id: p.posted for p in publishers}
        await async_wait_until(
            lambda: all(p.posted >= posted_at_return[p.task_id] + 30 for p in publishers),
            message="publishes after the outage",
        )
    finally:
        for publisher in publishers:
            publisher.stopping.set()
        await asyncio.gather(*publishing)
    marks = {p.task_id: p.last_seq for p in publishers}
    try:
        await async_wait_until(lambda: everyone_reached(marks), message=lambda: behind(marks))
        await async_wait_until(
            lambda: any(n.get("event_type") == "gap" for n in board.notices),
            message="the board viewer to be told to reload after the outage",
        )
    finally:
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        await sockets.aclose()

    for reader in readers:
        expected = list(range(reader.head + 1, by_task[reader.task_id].last_seq + 1))
        assert reader.seqs == expected, (
            f"node {reader.node} task {reader.task_id}: every seq once, in order "
            f"(missing {sorted(set(expected) - set(reader.seqs))[:10]}, "
            f"{len(reader.seqs) - len(set(reader.seqs))} duplicated)"
        )
    gap = next(n for n in board.notices if n.get("event_type") == "gap")
    assert gap["data"]["board"] is True
    # the board has no seq order to dedupe by: the bus and the poller hand nothing twice
    assert len(board.events) == len(set(board.events)), "no board event twice"
