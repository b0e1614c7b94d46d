"""Across processes (Redis) and across time (offline queue expiry)."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskline.settings import Settings
from tests.support.databases import empty_database
from tests.support.server import LiveServer
from tests.support.waiting import async_wait_until
from tests.support.ws import collect_events, open_ws, receive, receive_until


@pytest.fixture
def two_servers(pg_database_url: str, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two Taskline servers on one PostgreSQL database, sharing live events through Redis."""
    empty_database(pg_database_url)
    settings = Settings(database_url=pg_database_url, redis_url=redis_url)
    first, second = LiveServer(settings), LiveServer(settings)
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


async def test_events_published_on_one_server_reach_subscribers_of_another(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    """A subscriber on server B sees, in order, what agents publish through server A."""
    first, second = two_servers
    with httpx.Client(base_url=first.url) as on_first:
        task_id = on_first.post("/api/v1/tasks/", json={"title": "shared"}).json()["id"]
        async with open_ws(f"{second.ws_url}/ws/tasks/{task_id}") as ws:
            await receive_until(ws, "connection_established")
            last = 0
            for start in range(0, 200, 20):
                events = [
                    {"event_type": "progress_update", "data": {"progress": n / 200}}
                    for n in range(start, start + 20)
                ]
                last = on_first.post(f"/api/v1/tasks/{task_id}/events", json=events).json()[
                    "last_seq"
                ]
            received = await collect_events(ws, last)
    assert [e["seq"] for e in received] == list(range(2, last + 1))


async def test_offline_queue_expires_and_the_client_is_told(tmp_path: Path) -> None:
    """A client returning after the queue's time to live is told its queue expired."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}",
        offline_queue_ttl=0.3,
        heartbeat_interval=0.1,
    )
    server = LiveServer(settings)
    server.start()
    try:
        with httpx.Client(base_url=server.url) as client:
            task_id = client.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
            client.post("/api/v1/clients/client_late/messages", json={"n": 1})

            def queued() -> int:
                status = client.get("/api/v1/websocket/status").json()
                return int(status["offline_queues"]["messages"])

            # the server's sweep (every heartbeat_interval) discards the queue after its ttl
            await async_wait_until(lambda: queued() == 0, message="the offline queue to expire")
            url = f"{server.ws_url}/ws/tasks/{task_id}?client_id=client_late"
            async with open_ws(url) as ws:
                await receive_until(ws, "connection_established")
                notice = await receive(ws)
        assert notice["event_type"] == "queue_expired"
        assert notice["data"]["ttl_seconds"] == 0.3
    finally:
        server.stop()


async def test_a_status_patched_on_one_server_reaches_a_board_viewer_of_another(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    """PATCH an agent's status on server A: a board viewer on server B sees it live."""
    first, second = two_servers
    with httpx.Client(base_url=first.url) as on_first:
        agent_id = on_first.post("/api/v1/agents/", json={"name": "Roamer"}).json()["id"]
        async with open_ws(f"{second.ws_url}/ws/board") as ws:
            await receive_until(ws, "connection_established")
            on_first.patch(f"/api/v1/agents/{agent_id}", json={"status": "paused"})
            seen = await receive_until(ws, "agent_status_change")
    assert seen[-1]["data"]["agent_id"] == agent_id
    assert seen[-1]["data"]["status"] == "paused"
