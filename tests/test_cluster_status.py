"""The cluster view of ``GET /api/v1/websocket/status``: every process reports its figures
to Redis (``TASKLINE_NODE_STATS_INTERVAL``), so each one's status lists every node with its
connections; a killed node drops out within its reports' time to live; without Redis the
view is this node alone (``local``), and with Redis down it still answers 200 with this node
(``unavailable``)."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis as AsyncRedis

from taskline.bus.node_stats import NodeStats
from taskline.domain.ids import new_id
from taskline.settings import Settings
from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis, private_redis
from tests.support.server import LiveServer
from tests.support.waiting import TIME_SCALE, WAIT, async_wait_until
from tests.support.ws import open_ws, receive_until

__all__ = ["private_redis"]  # the fixture, used by name

#: Seconds between two reports of a node; a report lives three of them.
INTERVAL = 0.5


@pytest.fixture
def nodes(pg_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Three server processes on one PostgreSQL database and Redis (a prefix of their own)."""
    empty_database(pg_database_url)
    env = {
        "TASKLINE_REDIS_URL": redis_url,
        "TASKLINE_REDIS_PREFIX": new_id("test"),
        "TASKLINE_NODE_STATS_INTERVAL": str(INTERVAL),
    }
    first = ServerProcess(pg_database_url, tmp_path / "a.log", **env)
    others = [
        ServerProcess(
            pg_database_url, tmp_path / f"{n}.log", **env, TASKLINE_MIGRATE_ON_START="false"
        )
        for n in "bc"
    ]
    started = [first, *others]
    try:
        first.start(3 * WAIT)  # it applies the migrations; the others start after it, together
        with ThreadPoolExecutor(len(others)) as pool:
            list(pool.map(lambda node: node.start(3 * WAIT), others))
        yield started
    finally:
        for node in started:
            node.stop()


async def _get(url: str, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        answer = await client.get(path)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def _status_when(
    url: str, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT
) -> dict[str, Any]:
    """Poll the status at ``url`` until ``condition`` holds for it; return it."""
    last: dict[str, Any] = {}

    async def holds() -> bool:
        last.clear()
        last.update(await _get(url, "/api/v1/websocket/status"))
        return condition(last)

    await async_wait_until(
        holds, message=lambda: f"{what} (cluster: {last.get('cluster')})", timeout=timeout
    )
    return last


async def test_every_node_lists_every_node_with_its_connections_and_a_gone_one_drops_out(
    nodes: list[ServerProcess],
) -> None:
    """Node n holds n + 1 task subscribers (and node 0 a board viewer too); each node's
    status lists all three with those counts; after kill -9 of one, the others' views drop
    it within the reports' time to live, and one stopped with SIGTERM at once."""
    ids = [(await _get(node.url, "/health"))["node"] for node in nodes]
    async with httpx.AsyncClient(base_url=nodes[0].url, timeout=10) as client:
        task_id = (await client.post("/api/v1/tasks/", json={"title": "seen"})).json()["id"]
    expected = {ids[n]: (n + 1, 1 if n == 0 else 0) for n in range(len(nodes))}
    async with AsyncExitStack() as stack:
        for n, node in enumerate(nodes):
            for _ in range(n + 1):
                ws = await stack.enter_async_context(open_ws(f"{node.ws_url}/ws/tasks/{task_id}"))
                await receive_until(ws, "connection_established")
        board = await stack.enter_async_context(open_ws(f"{nodes[0].ws_url}/ws/board"))
        await receive_until(board, "connection_established")

        def counts(status: dict[str, Any]) -> dict[str, tuple[int, int]]:
            return {
                entry["node"]: (entry["subscribers"]["task"], entry["subscribers"]["board"])
                for entry in status["cluster"]
            }

        for n, node in enumerate(nodes):
            last = await _status_when(
                node.url,
                lambda status: status["cluster_view"] == "redis" and counts(status) == expected,
                f"the cluster view of {ids[n]}",
            )
            assert last["node"] == ids[n]
            assert last["connections_total"] == sum(expected[ids[n]])  # this node's, as before
            for entry in last["cluster"]:
                assert entry["connections"] == sum(expected[entry["node"]])
                assert entry["lag"]["bytes_pending"] >= 0 and entry["lag"]["catching_up"] == 0
                assert 0 <= entry["lag"]["seconds_since_report"] < 3 * INTERVAL * 10
                assert entry["uptime_seconds"] > 0 and entry["started_at"]
            mine = next(e for e in last["cluster"] if e["node"] == ids[n])
            assert mine["lag"]["seconds_since_report"] == 0  # this node's figures of now

        nodes[2].kill()
        left: list[str] = []

        async def dropped() -> bool:
            status = await _get(nodes[0].url, "/api/v1/websocket/status")
            left[:] = [entry["node"] for entry in status["cluster"]]
            return sorted(left) == sorted(ids[:2])

        # the bound under test (a report lives three intervals), plus two seconds for the
        # polls on a busy machine
        await async_wait_until(
            dropped,
            message=lambda: f"{ids[2]} to leave the cluster view (still: {left})",
            timeout=(3 * INTERVAL + 2.0) * TIME_SCALE,
        )
        status = await _get(nodes[1].url, "/api/v1/websocket/status")
        assert sorted(e["node"] for e in status["cluster"]) == sorted(ids[:2])

    # SIGTERM: a node that stops deletes its report, so it is gone as soon as it has exited
    # (no wait for the time to live: checked once, right after the exit)
    nodes[1].stop()
    status = await _get(nodes[0].url, "/api/v1/websocket/status")
    assert [e["node"] for e in status["cluster"]] == [ids[0]]


async def test_without_redis_the_cluster_is_this_node(sqlite_url: str) -> None:
    """One process, no Redis: ``cluster`` is this node's figures, ``cluster_view`` local."""
    server = LiveServer(Settings(database_url=sqlite_url))
    server.start()
    try:
        async with open_ws(f"{server.ws_url}/ws/board") as ws:
            await receive_until(ws, "connection_established")
            status = await _get(server.url, "/api/v1/websocket/status")
        health = await _get(server.url, "/health")
    finally:
        server.stop()
    assert status["cluster_view"] == "local"
    assert status["node"] == health["node"]
    (entry,) = status["cluster"]
    assert entry["node"] == health["node"]
    assert entry["connections"] == 1
    assert entry["subscribers"] == {"board": 1, "task": 0}
    assert entry["lag"] == {"bytes_pending": 0, "catching_up": 0, "seconds_since_report": 0}


async def test_with_redis_down_the_status_still_answers_with_this_node(
    private_redis: PrivateRedis, sqlite_url: str
) -> None:
    """Redis stops: 200, ``cluster`` is this node (with its connection), ``cluster_view``
    unavailable — never a 500."""
    url = private_redis.url
    server = LiveServer(
        Settings(database_url=sqlite_url, redis_url=url, node_stats_interval=INTERVAL)
    )
    server.start()
    try:

        async def reported() -> bool:
            status = await _get(server.url, "/api/v1/websocket/status")
            return status["cluster_view"] == "redis" and len(status["cluster"]) == 1

        await async_wait_until(reported, message="this node in the cluster view from Redis")
        private_redis.kill()
        async with open_ws(f"{server.ws_url}/ws/board") as ws:
            await receive_until(ws, "connection_established")
            status = await _get(server.url, "/api/v1/websocket/status")
    finally:
        server.stop()
    assert status["cluster_view"] == "unavailable"
    (entry,) = status["cluster"]
    assert entry["node"] == status["node"] and entry["connections"] == 1


async def test_reports_gone_or_not_json_objects_are_left_out(redis_url: str) -> None:
    """NodeStats on the test Redis: an id whose report expired is forgotten, a report that
    is not a JSON object is skipped, and closing deletes this node's report."""
    prefix = new_id("test")
    stats = NodeStats(
        redis_url,
        node="node_a",
        figures=lambda: {"connections": 2},
        interval=INTERVAL,
        prefix=prefix,
    )
    client = AsyncRedis.from_url(redis_url)
    try:
        await client.sadd(f"{prefix}:nodes", "node_bad", "node_gone")
        await client.set(f"{prefix}:node-stats:node_bad", b"[1, 2]", px=60_000)
        await stats.start()

        async def reported() -> list[dict[str, Any]]:
            return [r for r in await stats.cluster() if r["node"] == "node_a"]

        (report,) = await async_wait_until(reported, message="node_a's first report")
        assert report["connections"] == 2 and report["seconds_since_report"] >= 0
        assert [r["node"] for r in await stats.cluster()] == ["node_a"]
        assert not await client.sismember(f"{prefix}:nodes", "node_gone")
        await stats.close()
        assert await client.exists(f"{prefix}:node-stats:node_a") == 0
        assert not await client.sismember(f"{prefix}:nodes", "node_a")
    finally:
        await stats.close()
        await client.delete(f"{prefix}:nodes", f"{prefix}:node-stats:node_bad")
        await client.aclose()
