"""Personal messages across processes (PostgreSQL + Redis, real ``taskline serve`` processes,
nginx in front): a message posted on one process reaches the client connected to another
(``delivered`` true); a client connected nowhere gets one shared queue (size cap, dropped
ones counted) delivered once when it connects again through any process; a client id taken
by one principal on one process is refused to another on another (4403). Redis stopped: a
process queues a personal message itself."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from taskline.bus.client_relay import ClientRelay
from taskline.domain.ids import new_id
from taskline.settings import Settings
from tests.support.auth import make_token
from tests.support.nginx import Nginx, nginx_in_front
from tests.support.nodes import running_nodes
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis, private_redis
from tests.support.server import LiveServer
from tests.support.waiting import async_wait_until
from tests.support.ws import open_ws, receive, receive_until

__all__ = ["private_redis"]  # the fixture, used by name

QUEUE_SIZE = 10


@pytest.fixture
def nodes(pg_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with running_nodes(
        pg_database_url, redis_url, tmp_path, TASKLINE_OFFLINE_QUEUE_SIZE=str(QUEUE_SIZE)
    ) as started:
        yield started


@pytest.fixture
def nginx(nodes: list[ServerProcess]) -> Iterator[Nginx]:
    with nginx_in_front([node.port for node in nodes]) as proxy:
        yield proxy


async def message(url: str, client_id: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        posted = await http.post(f"/api/v1/clients/{client_id}/messages", json=body)
    assert posted.status_code == 200, posted.text
    answer: dict[str, Any] = posted.json()
    return answer


async def personal(ws: ClientConnection) -> dict[str, Any]:
    """The data of the next personal message on ``ws`` (other frames skipped)."""
    while True:
        frame = await receive(ws)
        if frame["event_type"] == "personal_message":
            data: dict[str, Any] = frame["data"]
            return data


async def connected_on(node: ServerProcess, client_id: str) -> bool:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        clients = (await http.get("/api/v1/websocket/status")).json()["clients"]
    return any(c["client_id"] == client_id for c in clients)


async def test_a_message_posted_on_one_process_reaches_the_client_on_another(
    nodes: list[ServerProcess],
) -> None:
    """The client is connected to A; messages posted on B and C reach it in order, each
    answered ``delivered`` true with nothing queued."""
    a, b, c = nodes
    async with open_ws(f"{a.ws_url}/ws/board?client_id=client_far") as ws:
        assert (await receive(ws))["data"]["client_id"] == "client_far"
        for n, node in enumerate((b, c, b)):
            answer = await message(node.url, "client_far", {"n": n})
            assert (answer["delivered"], answer["queued"]) == (True, 0)
            assert await personal(ws) == {"n": n}


async def test_a_client_away_from_every_process_gets_its_queue_once_anywhere(
    nodes: list[ServerProcess], nginx: Nginx
) -> None:
    """The client leaves A; 15 messages posted on B and C are queued once for all (the newest
    10 kept, ``queued`` growing to 10); it connects through nginx and gets those 10 in order
    and a notice that 5 were dropped; connecting again through each process gets none of
    them again (the next personal message is a new one)."""
    a, b, c = nodes
    url = f"{a.ws_url}/ws/board?client_id=client_away"
    async with open_ws(url) as ws:
        await receive(ws)  # connection_established

    async def gone() -> bool:
        return not await connected_on(a, "client_away")

    await async_wait_until(gone, message="A to forget client_away's connection")
    answers = [await message((b, c)[n % 2].url, "client_away", {"n": n}) for n in range(15)]
    assert [r["delivered"] for r in answers] == [False] * 15
    assert [r["queued"] for r in answers] == [min(n + 1, QUEUE_SIZE) for n in range(15)]

    async with open_ws(f"{nginx.ws_url}/ws/board?client_id=client_away") as ws:
        frames = await receive_until(ws, "queue_overflow")
        queued = [f["data"]["n"] for f in frames if f["event_type"] == "personal_message"]
        assert queued == list(range(5, 15))
        assert frames[-1]["data"]["dropped"] == 5
    for node in nodes:
        async with open_ws(f"{node.ws_url}/ws/board?client_id=client_away") as ws:
            await receive(ws)  # connection_established
            live = await message(c.url, "client_away", {"live": node.port})
            assert live["delivered"] is True
            assert await personal(ws) == {"live": node.port}  # nothing queued before it


@pytest.fixture
def secured_nodes(
    pg_database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    """Two processes that check who asks (``TASKLINE_AUTH=true``)."""
    with running_nodes(pg_database_url, redis_url, tmp_path, 2, TASKLINE_AUTH="true") as started:
        yield started


async def test_a_client_id_taken_on_one_process_is_refused_to_another_principal_on_another(
    secured_nodes: list[ServerProcess], pg_database_url: str
) -> None:
    """With authentication: ana's token connects with ``client_mine`` to A; bob's token
    presenting that id to B is closed with 4403 (its queued messages are ana's), while ana may
    come back with it through B."""
    a, b = secured_nodes
    ana = make_token(pg_database_url, "member", name="ana")
    bob = make_token(pg_database_url, "member", name="bob")
    as_ana = {"Authorization": f"Bearer {ana}"}
    as_bob = {"Authorization": f"Bearer {bob}"}
    board = "/ws/board?client_id=client_mine"
    async with open_ws(f"{a.ws_url}{board}", additional_headers=as_ana) as ws:
        assert (await receive(ws))["data"]["client_id"] == "client_mine"
    async with open_ws(f"{b.ws_url}{board}", additional_headers=as_bob) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with open_ws(f"{b.ws_url}{board}", additional_headers=as_ana) as ws:
        assert (await receive(ws))["data"]["client_id"] == "client_mine"


async def test_with_redis_stopped_a_process_queues_personal_messages_itself(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Redis killed: a message for a client connected nowhere is still accepted (queued in
    the process, ``delivered`` false, ``queued`` 1) and delivered when it connects there."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", redis_url=private_redis.url
    )
    server = LiveServer(settings)
    server.start()
    try:
        private_redis.kill()
        answer = await message(server.url, "client_alone", {"kept": "here"})
        assert (answer["delivered"], answer["queued"]) == (False, 1)
        async with open_ws(f"{server.ws_url}/ws/board?client_id=client_alone") as ws:
            assert await personal(ws) == {"kept": "here"}
            live = await message(server.url, "client_alone", {"live": True})
            assert live["delivered"] is True
            assert await personal(ws) == {"live": True}
    finally:
        server.stop()


async def test_a_shared_queue_keeps_the_newest_counts_the_dropped_and_tells_its_expiry(
    redis_url: str,
) -> None:
    """ClientRelay on the test Redis: 3 messages into a queue of 2 are the newest 2 and 1
    dropped, taken once; a queue that expired unread is told as expired when taken."""
    relay = ClientRelay(
        redis_url, node="node_test", queue_size=2, queue_ttl=1.0, prefix=new_id("test")
    )

    async def nowhere(client_id: str, frame: str) -> bool:
        return False

    await relay.start(nowhere, list)
    try:
        assert [await relay.enqueue("client_q", f) for f in ("a", "b", "c")] == [1, 2, 2]
        assert await relay.take("client_q") == (["b", "c"], 1, False)
        assert await relay.take("client_q") == ([], 0, False)
        assert await relay.send("client_q", "d") is False  # connected nowhere: queued
        assert await relay.depth("client_q") == 1

        async def expired() -> bool:
            return await relay.depth("client_q") == 0

        await async_wait_until(expired, message="the queue to expire after its TTL")
        assert await relay.take("client_q") == ([], 0, True)
        assert await relay.take("client_q") == ([], 0, False)  # told once
    finally:
        await relay.close()
