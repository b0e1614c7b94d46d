"""Three Taskline processes behind a real nginx (docs/deploy-nginx.conf) on PostgreSQL + Redis.

Subscribers connect through nginx (round robin, no sticky sessions) and so spread over the
processes; four publishers post straight to different processes; every subscriber must get
every seq of the task exactly once, in order.
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

from tests.support.nginx import Nginx, nginx_in_front
from tests.support.nodes import running_nodes
from tests.support.process import ServerProcess
from tests.support.ws import open_ws

PROCESSES = 3
SUBSCRIBERS = 300
PUBLISHERS = 4
POSTS_PER_PUBLISHER = 25
EVENTS_PER_POST = 50  # 4 x 25 x 50 = 5,000 events


@pytest.fixture
def cluster(
    pg_database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[list[ServerProcess], Nginx]]:
    """Three servers on one PostgreSQL database and Redis, and nginx in front of them."""
    with (
        running_nodes(pg_database_url, redis_url, tmp_path, PROCESSES) as servers,
        nginx_in_front([server.port for server in servers]) as nginx,
    ):
        yield servers, nginx


def _envelopes(raw: str | bytes) -> list[dict[str, Any]]:
    """The envelopes of one frame (a batch subscriber's frames are arrays)."""
    frame: Any = json.loads(raw)
    return frame if isinstance(frame, list) else [frame]


async def _established(ws: ClientConnection) -> None:
    """Receive until ``connection_established``."""
    async with asyncio.timeout(30):
        while True:
            kinds = [e["event_type"] for e in _envelopes(await ws.recv())]
            if "connection_established" in kinds:
                return


async def _seqs(ws: ClientConnection, last: int, timeout: float) -> list[int]:
    """The seqs of the task events received until ``last`` (batch frames are arrays)."""
    seqs: list[int] = []
    async with asyncio.timeout(timeout):
        while not seqs or seqs[-1] < last:
            for envelope in _envelopes(await ws.recv()):
                if envelope.get("seq") is not None:
                    seqs.append(envelope["seq"])
    return seqs


async def test_subscribers_through_nginx_get_every_seq_once_in_order(
    cluster: tuple[list[ServerProcess], Nginx],
) -> None:
    """300 subscribers through nginx, 4 publishers on different processes, 5,000 events."""
    servers, nginx = cluster
    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as through:
        created = await through.post("/api/v1/tasks/", json={"title": "fan-out"})
        task_id = created.json()["id"]
        async with AsyncExitStack() as stack:
            url = f"{nginx.ws_url}/ws/tasks/{task_id}?batch=1"
            sockets = [await stack.enter_async_context(open_ws(url)) for _ in range(SUBSCRIBERS)]
            for ws in sockets:
                await _established(ws)
            # nginx spread them: every process holds some, and all are held
            held = []
            for server in servers:
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as direct:
                    status = (await direct.get("/api/v1/websocket/status")).json()
                    held.append(status["connections_total"])
            assert sum(held) == SUBSCRIBERS and min(held) > 0, held

            async def publish(publisher: int) -> int:
                server = servers[publisher % PROCESSES]
                last = 0
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as direct:
                    for post in range(POSTS_PER_PUBLISHER):
                        events = [
                            {
                                "event_type": "custom",
                                "data": {"name": "tick", "value": [publisher, post, n]},
                            }
                            for n in range(EVENTS_PER_POST)
                        ]
                        answer = await direct.post(f"/api/v1/tasks/{task_id}/events", json=events)
                        assert answer.status_code in (200, 201), answer.text
                        last = max(last, answer.json()["last_seq"])
                return last

            lasts = await asyncio.gather(*(publish(p) for p in range(PUBLISHERS)))
            last = max(lasts)
            assert last == 1 + PUBLISHERS * POSTS_PER_PUBLISHER * EVENTS_PER_POST
            received = await asyncio.gather(*(_seqs(ws, last, 120) for ws in sockets))
    expected = list(range(2, last + 1))
    wrong = [n for n, seqs in enumerate(received) if seqs != expected]
    assert not wrong, f"{len(wrong)} of {SUBSCRIBERS} subscribers missed, repeated or reordered"
