"""Rate limits and WebSocket caps across processes: three real ``taskline serve`` processes
on one PostgreSQL database and one Redis, with authentication on and small limits.

A principal's requests spread over the processes take their tokens from one bucket in
Redis, and its WebSockets count against one cap (closed with 1013 past it); the sockets of
a process killed with SIGKILL stop counting within ``limit_ws_node_ttl``. With Redis down
(a private ``redis-server`` the test kills), each process applies its own limits: requests
get 201 or 429, never a 500, and one warning is logged per outage; once Redis is back the
limits are shared again, counting the sockets opened meanwhile.

Rates are set so low (a token every 100 s) that none flows in while a test runs.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection

from taskline.api.doors import Doors
from taskline.api.fallback import Fallback
from taskline.api.throttle import Throttle
from taskline.bus import RedisRates, RedisSockets
from taskline.domain.errors import StorageError
from taskline.domain.ids import new_id
from taskline.server import build_server
from taskline.settings import Settings
from tests.support.auth import make_token, make_user
from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis, private_redis
from tests.support.server import free_port
from tests.support.waiting import TIME_SCALE, async_wait_until, wait_until
from tests.support.ws import open_ws, receive
from tests.test_security_limits import first_frame

__all__ = ["private_redis"]  # the fixture, used by name

SLOW = 0.01  # tokens per second: one every 100 s
#: Seconds within which a killed process's sockets stop counting (the setting under test).
NODE_TTL = 3.0
WARNING = "each process applies its own rate limits and WebSocket caps"
RECOVERED = "the limits are shared by every process again"


@dataclass
class Cluster:
    """Server processes sharing a database and a Redis, and two members' tokens."""

    nodes: list[ServerProcess]
    tokens: dict[str, str]

    def client(self, node: ServerProcess, who: str) -> httpx.Client:
        return httpx.Client(base_url=node.url, headers=self.headers(who), timeout=10)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    @asynccontextmanager
    async def board(self, node: ServerProcess, who: str) -> AsyncIterator[ClientConnection]:
        """A board WebSocket of ``who`` on ``node`` (not yet read)."""
        url = f"{node.ws_url}/ws/board"
        async with open_ws(url, additional_headers=self.headers(who)) as websocket:
            yield websocket


def start_cluster(
    database_url: str, redis_url: str, tmp_path: Path, count: int, **env: str
) -> Cluster:
    """``count`` processes with authentication on and ``env``; the admin and the tokens are
    made first (that migrates the database), so the processes start in parallel without
    migrating."""
    empty_database(database_url)
    # an admin with a password: no process creates the first admin (they would race)
    make_user(database_url, "admin", "admin", password="a long test password")
    tokens = {who: make_token(database_url, "member", name=who) for who in ("ana", "bo")}
    settings = {
        "TASKLINE_REDIS_URL": redis_url,
        "TASKLINE_REDIS_PREFIX": new_id("test"),  # other tests' servers on this Redis
        "TASKLINE_AUTH": "true",
        "TASKLINE_MIGRATE_ON_START": "false",
        **env,
    }
    nodes = [ServerProcess(database_url, tmp_path / f"{n}.log", **settings) for n in "abc"[:count]]
    try:
        with ThreadPoolExecutor(count) as pool:  # each start waits for its /health
            list(pool.map(lambda node: node.start(timeout=90 * TIME_SCALE), nodes))
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return Cluster(nodes, tokens)


@pytest.fixture
def cluster(pg_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Three processes: 10 writes and 6 publishes per principal, 4 WebSockets each."""
    started = start_cluster(
        pg_database_url,
        redis_url,
        tmp_path,
        3,
        TASKLINE_LIMIT_WRITE_RATE=str(SLOW),
        TASKLINE_LIMIT_WRITE_BURST="10",
        TASKLINE_LIMIT_PUBLISH_RATE=str(SLOW),
        TASKLINE_LIMIT_PUBLISH_BURST="6",
        TASKLINE_LIMIT_WS_PER_PRINCIPAL="4",
        TASKLINE_LIMIT_WS_NODE_TTL=str(NODE_TTL),
    )
    try:
        yield started
    finally:
        for node in started.nodes:
            node.stop()


def test_a_principals_requests_spread_over_three_processes_are_limited_in_total(
    cluster: Cluster,
) -> None:
    """30 writes of one token, round robin over three processes: the first 10 pass (its
    burst, not 10 per process), the rest get 429 with Retry-After and the RateLimit fields;
    its publishes have a bucket of their own (6 in all), and another token's are its own."""
    clients = [cluster.client(node, "ana") for node in cluster.nodes]
    try:
        made = [clients[n % 3].post("/api/v1/tasks/", json={"title": f"t{n}"}) for n in range(30)]
        assert [answer.status_code for answer in made] == [201] * 10 + [429] * 20
        refused = made[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-policy"] == '"write";q=10;w=1000'
        assert refused.headers["ratelimit"].startswith('"write";r=0;t=')
        assert refused.json()["violated-policies"] == ["write"]

        task_id = made[0].json()["id"]
        published = [
            clients[n % 3]
            .post(
                f"/api/v1/tasks/{task_id}/events",
                json={"event_type": "custom", "data": {"name": "n", "value": n}},
            )
            .status_code
            for n in range(12)
        ]
        assert published.count(429) == 6 and published[6:] == [429] * 6, published
        assert all(200 <= status < 300 for status in published[:6]), published
    finally:
        for client in clients:
            client.close()
    with cluster.client(cluster.nodes[2], "bo") as bo:
        assert bo.post("/api/v1/tasks/", json={"title": "bo's"}).status_code == 201


async def admitted(cluster: Cluster, node: ServerProcess, who: str) -> bool:
    """Whether a new board WebSocket of ``who`` on ``node`` is let in (closed at once)."""
    async with cluster.board(node, who) as websocket:
        return await first_frame(websocket) != 1013


async def test_a_principals_websockets_across_processes_stop_at_the_cap_with_1013(
    cluster: Cluster,
) -> None:
    """Two WebSockets on A, one on B, one on C: the principal's cap of 4 is reached, and a
    fifth on any process is closed with 1013 naming the principal cap; another principal
    still connects; one closed on A frees a place on C."""
    a, b, c = cluster.nodes
    async with AsyncExitStack() as stack:
        held = [await stack.enter_async_context(cluster.board(n, "ana")) for n in (a, a, b, c)]
        for websocket in held:
            assert (await receive(websocket))["event_type"] == "connection_established"
        for node in cluster.nodes:
            async with cluster.board(node, "ana") as fifth:
                assert await first_frame(fifth) == 1013
                assert "4 WebSockets are open for this principal" in (fifth.close_reason or "")
        assert await admitted(cluster, a, "bo")

        await held[0].close()

        async def freed() -> bool:
            return await admitted(cluster, c, "ana")

        await async_wait_until(freed, message="a place on C once ana's socket on A was closed")


async def test_a_killed_process_sockets_stop_counting_within_the_node_ttl(
    cluster: Cluster,
) -> None:
    """Four WebSockets on A fill the cap; kill -9 of A (nothing counts them out), and B lets
    the principal in again within limit_ws_node_ttl, as A's counts expire."""
    a, b, _ = cluster.nodes
    async with AsyncExitStack() as stack:
        for _ in range(4):
            websocket = await stack.enter_async_context(cluster.board(a, "ana"))
            assert (await receive(websocket))["event_type"] == "connection_established"
        assert not await admitted(cluster, b, "ana")
        a.kill()

        async def let_in() -> bool:
            return await admitted(cluster, b, "ana")

        await async_wait_until(
            let_in,
            message=f"ana's sockets on the killed A no longer counted within {NODE_TTL:g} s",
            timeout=(NODE_TTL + 2.0) * TIME_SCALE,
            interval=0.1,
        )


# --- Redis down -----------------------------------------------------------------------------


@pytest.fixture
def pair(pg_database_url: str, private_redis: PrivateRedis, tmp_path: Path) -> Iterator[Cluster]:
    """Two processes on the private Redis: 4 writes per principal, 2 WebSockets each."""
    started = start_cluster(
        pg_database_url,
        private_redis.url,
        tmp_path,
        2,
        TASKLINE_LIMIT_WRITE_RATE=str(SLOW),
        TASKLINE_LIMIT_WRITE_BURST="4",
        TASKLINE_LIMIT_WS_PER_PRINCIPAL="2",
        TASKLINE_LIMIT_WS_NODE_TTL=str(NODE_TTL),
    )
    try:
        yield started
    finally:
        for node in started.nodes:
            node.stop()


def statuses(clients: list[httpx.Client], count: int) -> list[int]:
    """``count`` writes, round robin over ``clients``; each answer's status."""
    return [
        clients[n % len(clients)].post("/api/v1/tasks/", json={"title": f"w{n}"}).status_code
        for n in range(count)
    ]


async def test_with_redis_down_each_process_applies_its_own_limits_and_none_fails(
    pair: Cluster, private_redis: PrivateRedis
) -> None:
    """Redis killed: each process gives the principal its own 4 writes (8 in all, then 429,
    never 500) and its own 2 WebSockets, logging one warning. Redis started again (empty):
    the limits are shared again, with one fresh bucket of 4 for the two processes, and the
    sockets opened on A during the outage count on B once A has written its counts."""
    a, b = pair.nodes
    clients = [pair.client(node, "ana") for node in pair.nodes]
    try:
        assert statuses(clients, 2) == [201, 201]  # shared: 2 of the 4 taken
        private_redis.kill()
        assert sorted(statuses(clients, 12)) == [201] * 8 + [429] * 4
        async with AsyncExitStack() as stack:
            for _ in range(2):
                websocket = await stack.enter_async_context(pair.board(a, "ana"))
                assert (await receive(websocket))["event_type"] == "connection_established"
            assert not await admitted(pair, a, "ana")  # A's own cap of 2
            assert await admitted(pair, b, "ana")  # B counts alone
            for node in pair.nodes:
                assert node.log().count(WARNING) == 1, node.log()

            private_redis.start()
            seen: list[int] = []

            def both_recovered() -> bool:
                seen.extend(statuses(clients, 2))
                return all(RECOVERED in node.log() for node in pair.nodes)

            wait_until(both_recovered, message="both processes to use Redis again", interval=0.2)
            seen.extend(statuses(clients, 8))
            assert set(seen) <= {201, 429} and seen.count(201) == 4, seen  # the fresh bucket

            # A rewrites its counts (2 sockets) into the empty Redis: B refuses the principal
            async def refused_on_b() -> bool:
                return not await admitted(pair, b, "ana")

            await async_wait_until(
                refused_on_b, message="B to count ana's 2 sockets on A", interval=0.2
            )
    finally:
        for client in clients:
            client.close()


# --- the parts, on the test Redis (two objects stand for two processes) ---------------------


@asynccontextmanager
async def started(*parts: RedisRates | RedisSockets) -> AsyncIterator[None]:
    for part in parts:
        await part.start()
    try:
        yield
    finally:
        for part in parts:
            await part.close()


async def test_one_bucket_in_redis_serves_every_process(redis_url: str) -> None:
    """Takes through two clients drain one bucket (3, then a wait); the key expires once the
    bucket would be full again; another principal's bucket and another kind are their own."""
    prefix = new_id("test")
    one, two = RedisRates(redis_url, prefix=prefix), RedisRates(redis_url, prefix=prefix)
    async with started(one, two):
        taken = [await (one, two)[n % 2].take("write", "token:a", SLOW, 3) for n in range(5)]
        assert [left for _, left in taken[:3]] == [2, 1, 0]
        assert [wait for wait, _ in taken[:3]] == [0.0, 0.0, 0.0]
        assert all(99 < wait <= 100 for wait, _ in taken[3:]), taken  # a token per 100 s
        assert await one.take("write", "token:b", SLOW, 3) == (0.0, 2)
        assert await one.take("publish", "token:a", SLOW, 3) == (0.0, 2)
        ttl = redis.Redis.from_url(redis_url).pttl(one.key("write", "token:a"))
        assert 0 < int(ttl) <= 301_000  # 3 tokens at 0.01 per second fill in 300 s


async def test_unreachable_redis_is_a_storage_error(tmp_path: Path) -> None:
    """Nothing listens on the port: StorageError (the throttle then counts alone); so
    before start."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    rates, sockets = RedisRates(url), RedisSockets(url, node="node_x")
    with pytest.raises(StorageError, match="Redis"):
        await rates.take("write", "token:a", 1.0, 1)
    async with started(rates, sockets):
        with pytest.raises(StorageError, match="could not take a write token"):
            await rates.take("write", "token:a", 1.0, 1)
        with pytest.raises(StorageError, match="Redis"):
            await sockets.admit("token:a", "10.0.0.1", per_principal=1, per_address=0, total=0)
        sockets.counted("token:a", "10.0.0.1")  # admitted by the process alone
        await sockets.release("token:a", "10.0.0.1")  # never raises
        assert sockets.counts == {"total": 0}


CAPS = {"per_principal": 2, "per_address": 0, "total": 3}


async def test_socket_counts_add_up_over_nodes_and_one_takes_the_last_place(
    redis_url: str,
) -> None:
    """A and B count into one total; both asking for the last place at once: one gets it;
    a release frees it; a node that closes takes its sockets with it."""
    prefix = new_id("test")
    a, b = (RedisSockets(redis_url, node=n, prefix=prefix) for n in ("node_a", "node_b"))
    async with started(a, b):
        assert await a.admit("token:x", "10.0.0.1", **CAPS) is None
        assert await b.admit("token:x", "10.0.0.2", **CAPS) is None
        assert await a.admit("token:x", "10.0.0.1", **CAPS) == "principal"  # 2 in all
        verdicts = await asyncio.gather(
            a.admit("token:y", "10.0.0.1", **CAPS), b.admit("token:z", "10.0.0.2", **CAPS)
        )
        assert sorted(verdicts, key=str) == [None, "total"]
        assert a.counts["total"] + b.counts["total"] == 3
        winner = a if a.counts["total"] == 2 else b
        await winner.release(*(("token:y", "10.0.0.1") if winner is a else ("token:z", "10.0.0.2")))
        assert await b.admit("token:w", "10.0.0.2", **CAPS) is None
        await a.close()  # its sockets (1 or 2) stop counting
        assert await b.admit("token:v", "10.0.0.3", **CAPS) is None


async def test_a_socket_counted_alone_reaches_redis_at_the_next_renewal(redis_url: str) -> None:
    """A socket admitted while A could not reach Redis (counted) is written into A's hash
    when A renews it; so is a hash lost in Redis (a restart): B then counts A's sockets."""
    prefix = new_id("test")
    a, b = (RedisSockets(redis_url, node=n, prefix=prefix) for n in ("node_a", "node_b"))
    async with started(a, b):
        await a.renew()
        a.counted("token:x", "10.0.0.1")
        a.counted("token:x", "10.0.0.1")
        await a.renew()
        assert await b.admit("token:x", "10.0.0.2", **CAPS) == "principal"
        redis.Redis.from_url(redis_url).delete(a.key)  # as a Redis restarted empty would
        assert await b.admit("token:x", "10.0.0.2", **CAPS) is None  # A's hash is gone
        await b.release("token:x", "10.0.0.2")
        await a.renew()  # found missing: rewritten whole
        assert await b.admit("token:x", "10.0.0.2", **CAPS) == "principal"


def test_the_fallback_warns_once_per_outage_and_asks_again_once_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    fallback = Fallback(retry=1.0, clock=lambda: now[0])
    assert fallback.usable() and not fallback.down
    with caplog.at_level(logging.WARNING, logger="taskline.limits"):
        fallback.failed(StorageError("Redis: could not take a write token: refused"))
        assert fallback.down and not fallback.usable()
        now[0] = 0.5
        assert not fallback.usable()
        now[0] = 1.0
        assert fallback.usable() and not fallback.usable()  # one caller asks
        fallback.failed(StorageError("Redis: still refused"))
        now[0] = 2.5
        assert fallback.usable()
        fallback.succeeded()
        assert fallback.usable() and fallback.usable() and not fallback.down
        fallback.failed(StorageError("Redis: refused again"))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3 and fallback.outages == 2, lines
    assert WARNING in lines[0] and "refused" in lines[0]
    assert RECOVERED in lines[1] and "after 2.5 s" in lines[1]
    assert "refused again" in lines[2]


def test_with_redis_the_server_asks_the_shared_limits_first(tmp_path: Path) -> None:
    """build_server hands the app's Redis parts to the throttle and the socket caps, with one
    fallback for both; without Redis, or with the limits off, there are none."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'wiring.db'}"
    server = build_server(Settings(database_url=database, redis_url="redis://127.0.0.1:1/0"))
    state = server.app.state
    assert isinstance(state.shared_rates, RedisRates)
    assert isinstance(state.shared_sockets, RedisSockets)
    doors = server.config.app
    assert isinstance(doors, Doors) and doors.sockets is not None
    throttle = doors.app
    assert isinstance(throttle, Throttle) and throttle.shared is state.shared_rates
    assert doors.sockets.shared is state.shared_sockets
    assert doors.sockets.fallback is throttle.fallback
    for settings in (
        Settings(database_url=database),
        Settings(database_url=database, redis_url="redis://127.0.0.1:1/0", limits=False),
    ):
        state = build_server(settings).app.state
        assert state.shared_rates is None and state.shared_sockets is None
