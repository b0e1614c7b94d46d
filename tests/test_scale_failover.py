"""Losing a node behind nginx while events flow: three real processes on PostgreSQL + Redis
behind a real nginx (docs/deploy-nginx.conf).

Subscribers connect through nginx and follow one task the way a client should: on every
drop they reconnect through nginx with ``since`` (their last seq) and ``epoch``. Publishers
post straight to the nodes that stay. One node then goes: killed with SIGKILL (a crash), or
sent SIGTERM (a drain). Either way every subscriber ends with every seq exactly once, in
order; a killed node's agent shows offline within the presence TTL; a draining node closes
its WebSockets with 1001, takes no new connections (nginx sends them to the others) and
exits within its graceful shutdown timeout.
"""

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support.nginx import Nginx, nginx_in_front
from tests.support.nodes import running_nodes
from tests.support.process import ServerProcess
from tests.support.waiting import TIME_SCALE, WAIT, async_wait_until
from tests.support.ws import open_ws

PROCESSES = 3
SUBSCRIBERS = 75
PUBLISHERS = 2  # each posts to one of the two nodes that stay
POSTS_PER_PUBLISHER = 15
EVENTS_PER_POST = 50  # 2 x 15 x 50 = 1,500 events
#: The task's last seq once everything is published (seq 1 is task_created).
LAST_SEQ = 1 + PUBLISHERS * POSTS_PER_PUBLISHER * EVENTS_PER_POST
#: The node goes once this many posts of every publisher are in.
POSTS_BEFORE = 3
#: Seconds within which a dead node's agents show offline (the setting under test).
PRESENCE_TTL = 3.0
#: Seconds a draining node waits for requests in progress before it ends them and exits.
SHUTDOWN_TIMEOUT = 8.0
#: Seconds a server may take to start.
START_TIMEOUT = 3 * WAIT


@pytest.fixture
def cluster(
    pg_database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[list[ServerProcess], Nginx]]:
    """Three servers on one PostgreSQL database and Redis (a prefix of their own), nginx in
    front; the first server applies the migrations, the others start together after it."""
    with (
        running_nodes(
            pg_database_url,
            redis_url,
            tmp_path,
            PROCESSES,
            start_timeout=START_TIMEOUT,  # a start takes seconds on a busy machine
            TASKLINE_PRESENCE_TTL=str(PRESENCE_TTL),
            TASKLINE_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        ) as servers,
        nginx_in_front([server.port for server in servers]) as nginx,
    ):
        yield servers, nginx


def _envelopes(raw: str | bytes) -> list[dict[str, Any]]:
    """The envelopes of one frame (a batch subscriber's frames are arrays)."""
    frame: Any = json.loads(raw)
    return frame if isinstance(frame, list) else [frame]


@dataclass
class Follower:
    """A subscriber that resumes through nginx after every drop, and what it went through."""

    url: str  #: the task's stream through nginx, without query
    seqs: list[int] = field(default_factory=list)  #: every seq received, as received
    closes: list[int | None] = field(default_factory=list)  #: close codes of the drops
    refused: int = 0  #: handshakes that failed (nginx found no node in time)
    established: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, last_seq: int) -> None:
        """Follow until ``last_seq``, resuming from the last seq received after each drop."""
        since, epoch = 1, ""  # seq 1 (task_created) was committed before anyone connected
        while True:
            query = f"?batch=1&since={since}" + (f"&epoch={epoch}" if epoch else "")
            try:
                async with open_ws(self.url + query) as ws:
                    while True:
                        for envelope in _envelopes(await ws.recv()):
                            if envelope["event_type"] == "connection_established":
                                epoch = envelope["data"]["epoch"]
                                self.established.set()
                            seq = envelope.get("seq")
                            if seq is not None:
                                self.seqs.append(seq)
                                since = seq
                                if seq >= last_seq:
                                    return
            except ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd is not None else None)
            except (InvalidHandshake, OSError, TimeoutError):
                self.refused += 1
                await asyncio.sleep(0.05)  # a pause before retrying, as a client would


async def _publish(
    server: ServerProcess, task_id: str, publisher: int, posted: asyncio.Event
) -> int:
    """Post this publisher's events to ``server``; set ``posted`` after ``POSTS_BEFORE``."""
    last = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as direct:
        for post in range(POSTS_PER_PUBLISHER):
            events = [
                {"event_type": "custom", "data": {"name": "tick", "value": [publisher, post, n]}}
                for n in range(EVENTS_PER_POST)
            ]
            answer = await direct.post(f"/api/v1/tasks/{task_id}/events", json=events)
            assert answer.status_code in (200, 201), answer.text
            last = max(last, answer.json()["last_seq"])
            if post + 1 == POSTS_BEFORE:
                posted.set()
    return last


async def _connections(server: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as direct:
        answer = await direct.get("/api/v1/websocket/status")
        assert answer.status_code == 200, answer.text
        return int(answer.json()["connections_total"])


async def _board_connections(server: ServerProcess) -> int:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as direct:
        return int((await direct.get("/api/v1/websocket/status")).json()["board_connections"])


async def _agent_status(server: ServerProcess, agent_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as direct:
        return str((await direct.get(f"/api/v1/agents/{agent_id}")).json()["status"])


async def _followers_connected(
    servers: list[ServerProcess], nginx: Nginx, task_id: str
) -> tuple[list[Follower], list[asyncio.Task[None]]]:
    """``SUBSCRIBERS`` followers through nginx, each connected once, spread over every node."""
    followers = [Follower(f"{nginx.ws_url}/ws/tasks/{task_id}") for _ in range(SUBSCRIBERS)]
    runs = [asyncio.create_task(f.run(LAST_SEQ)) for f in followers]
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(f.established.wait() for f in followers))
    held = [await _connections(server) for server in servers]
    assert sum(held) == SUBSCRIBERS and min(held) > 0, held
    return followers, runs


def _check_every_seq_once_in_order(followers: list[Follower]) -> None:
    expected = list(range(2, LAST_SEQ + 1))
    wrong = [n for n, f in enumerate(followers) if f.seqs != expected]
    assert not wrong, (
        f"{len(wrong)} of {SUBSCRIBERS} subscribers missed, repeated or reordered a seq; "
        f"the first: {len(followers[wrong[0]].seqs)} seqs, closes {followers[wrong[0]].closes}"
    )


async def test_a_node_killed_mid_run_loses_no_subscriber_event_and_its_agent_goes_offline(
    cluster: tuple[list[ServerProcess], Nginx],
) -> None:
    """kill -9 of one node while two publishers post to the others: its subscribers drop,
    reconnect through nginx (which skips the dead node) and resume from their last seq, and
    every subscriber gets every seq once, in order; its agent shows offline on another node
    within the presence TTL."""
    servers, nginx = cluster
    victim, survivors = servers[0], servers[1:]
    async with httpx.AsyncClient(base_url=survivors[0].url, timeout=30) as direct:
        task_id = (await direct.post("/api/v1/tasks/", json={"title": "failover"})).json()["id"]
    followers, runs = await _followers_connected(servers, nginx, task_id)
    on_victim = await _connections(victim)
    async with open_ws(f"{victim.ws_url}/ws/agents/agent_victim?name=Victim") as agent:
        assert json.loads(await agent.recv())["type"] == "welcome"
        assert await _agent_status(survivors[1], "agent_victim") == "idle"
        posted = [asyncio.Event() for _ in range(PUBLISHERS)]
        publishing = asyncio.gather(
            *(_publish(survivors[p], task_id, p, posted[p]) for p in range(PUBLISHERS))
        )
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(event.wait() for event in posted))
        victim.kill()

        async def offline() -> bool:
            return await _agent_status(survivors[1], "agent_victim") == "offline"

        # the bound under test, plus three seconds for the sweep's own reads and writes (and
        # these polls) on a machine busy with the reconnects and the publishing
        await async_wait_until(
            offline,
            message=lambda: f"agent_victim offline within {PRESENCE_TTL:g} s of the kill",
            timeout=(PRESENCE_TTL + 3.0) * TIME_SCALE,
        )
        assert max(await publishing) == LAST_SEQ
        async with asyncio.timeout(2 * WAIT):
            await asyncio.gather(*runs)
    dropped = [f for f in followers if f.closes]
    assert len(dropped) == on_victim, (len(dropped), on_victim)
    assert all(len(f.closes) == 1 for f in dropped), [f.closes for f in dropped]
    # nginx passed every handshake that met the dead node on to another: none failed
    assert all(f.refused == 0 for f in followers), [f.refused for f in followers]
    _check_every_seq_once_in_order(followers)
    assert sum([await _connections(s) for s in survivors]) == 0  # all finished and left


def _slow_request(server: ServerProcess) -> socket.socket:
    """A request to ``server`` whose body never comes: it keeps a draining node draining."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    return sock


async def test_a_draining_node_hands_its_subscribers_to_the_others_with_no_gap(
    cluster: tuple[list[ServerProcess], Nginx],
) -> None:
    """SIGTERM to one node while publishers post to the others: its subscribers get 1001,
    reconnect through nginx to the other nodes (only: nobody is dropped twice) and resume
    with no gap; while it drains (a request in progress holds it) new connections through
    nginx all go to the others; it exits within its graceful shutdown timeout."""
    servers, nginx = cluster
    victim, survivors = servers[0], servers[1:]
    async with httpx.AsyncClient(base_url=survivors[0].url, timeout=30) as direct:
        task_id = (await direct.post("/api/v1/tasks/", json={"title": "drain"})).json()["id"]
    followers, runs = await _followers_connected(servers, nginx, task_id)
    on_victim = await _connections(victim)
    slow = _slow_request(victim)
    try:
        posted = [asyncio.Event() for _ in range(PUBLISHERS)]
        publishing = asyncio.gather(
            *(_publish(survivors[p], task_id, p, posted[p]) for p in range(PUBLISHERS))
        )
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(event.wait() for event in posted))
        assert victim.process is not None
        victim.process.send_signal(signal.SIGTERM)
        dropped = [f for f in followers if f.closes]

        def all_dropped() -> bool:
            dropped[:] = [f for f in followers if f.closes]
            return len(dropped) == on_victim

        await async_wait_until(all_dropped, message=lambda: f"{on_victim} closes, {len(dropped)}")
        # new connections while the node drains: nginx sends every one to another node
        async with AsyncExitStack() as stack:
            boards = [
                await stack.enter_async_context(open_ws(f"{nginx.ws_url}/ws/board"))
                for _ in range(2 * PROCESSES)
            ]
            for ws in boards:
                hello = _envelopes(await asyncio.wait_for(ws.recv(), WAIT))
                assert hello[0]["event_type"] == "connection_established"
            held = [await _board_connections(s) for s in survivors]
            assert sum(held) == len(boards), held
        assert victim.process.poll() is None, "the node ended before the test could see it drain"
        async with asyncio.timeout(2 * WAIT):
            assert max(await publishing) == LAST_SEQ
            await asyncio.gather(*runs)
        try:
            code = await asyncio.to_thread(victim.process.wait, SHUTDOWN_TIMEOUT + 10 * TIME_SCALE)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the node did not exit after its {SHUTDOWN_TIMEOUT:g} s"
            ) from None
        assert code in (0, -signal.SIGTERM), victim.log()
    finally:
        slow.close()
    assert all(f.closes == [1001] for f in dropped), [f.closes for f in dropped]
    assert all(f.refused == 0 for f in followers), [f.refused for f in followers]
    _check_every_seq_once_in_order(followers)
