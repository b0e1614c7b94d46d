"""Limits on load, on a real server over real sockets: 429 with its headers per principal,
WebSocket caps per principal, address and in all (closed with 1013 before any data), the
header timeout against slowloris, and frame floods (an error, then 4429).

Limits are set low here so that a few requests reach them (a rate of 0.01 per second adds a
token every 100 s: none arrives while a test runs). Several client addresses come from the
loopback network: 127.0.0.2, 127.0.0.3 … reach a server bound to 127.0.0.1 on Linux.
"""

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from taskline.settings import Settings
from tests.support.auth import SecureServer, secure_server
from tests.support.server import LiveServer
from tests.support.waiting import WAIT, async_wait_until, wait_until
from tests.support.ws import open_ws, receive, receive_until

SLOW = 0.01  # tokens per second: one every 100 s


def client_from(server: SecureServer | LiveServer, address: str, **kwargs: Any) -> httpx.Client:
    """An HTTP client whose connections come from ``address``."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, timeout=10, transport=transport, **kwargs)


@pytest.fixture
def limited(sqlite_url: str) -> Iterator[SecureServer]:
    """Auth on; 3 writes and 4 publishes per principal, then a token per 100 s."""
    with secure_server(
        sqlite_url,
        limit_write_rate=SLOW,
        limit_write_burst=3,
        limit_publish_rate=SLOW,
        limit_publish_burst=4,
    ) as server:
        yield server


def test_a_burst_from_one_token_gets_429_with_its_headers_and_others_go_on(
    limited: SecureServer,
) -> None:
    """Past its burst a token's writes get 429 problem+json with Retry-After, RateLimit-Policy
    and RateLimit; another token's writes, the same token's reads and its publishes (a bucket
    of their own) still go through."""
    with limited.client("member") as ana, limited.client("admin") as admin:
        task_id = ana.post("/api/v1/tasks/", json={"title": "one"}).json()["id"]
        assert ana.patch(f"/api/v1/tasks/{task_id}", json={"title": "two"}).status_code == 200
        assert ana.post("/api/v1/tasks/", json={"title": "three"}).status_code == 201
        refused = ana.post("/api/v1/tasks/", json={"title": "four"})
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        retry = int(refused.headers["retry-after"])
        assert retry >= 1
        assert refused.headers["ratelimit-policy"] == '"write";q=3;w=300'
        assert refused.headers["ratelimit"] == f'"write";r=0;t={retry}'
        assert refused.headers["x-content-type-options"] == "nosniff"  # Doors' headers too
        problem = refused.json()
        assert problem["status"] == 429 and problem["type"].endswith("/rate-limited")
        assert problem["violated-policies"] == ["write"] and problem["retry_after"] == retry
        assert "0.01 per second (bursts of 3)" in problem["detail"]
        assert ana.get("/api/v1/tasks/").status_code == 200  # reads are not limited
        titles = [t["title"] for t in ana.get("/api/v1/tasks/").json()["items"]]
        assert "four" not in titles  # refused before the route ran
        assert admin.post("/api/v1/tasks/", json={"title": "admin's"}).status_code == 201
        # publishes have their own bucket: ana's writes being spent does not touch it
        event = {"event_type": "progress_update", "data": {"progress": 0.5}}
        statuses = [
            ana.post(f"/api/v1/tasks/{task_id}/events", json=event).status_code for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 200, 429]
        last = ana.post(f"/api/v1/tasks/{task_id}/events", json=event)
        assert last.headers["ratelimit-policy"] == '"publish";q=4;w=400'
        assert admin.post(f"/api/v1/tasks/{task_id}/events", json=event).status_code == 200


def test_anonymous_requests_are_counted_by_address(sqlite_url: str) -> None:
    """Without authentication everyone is anonymous: each client address has its own bucket
    (here the sign-in route of an auth server, the one unsafe request open to anyone, and a
    server without authentication)."""
    with secure_server(sqlite_url, limit_write_rate=SLOW, limit_write_burst=2) as server:
        wrong = {"username": "ana", "password": "wrong"}
        with client_from(server, "127.0.0.1") as one, client_from(server, "127.0.0.2") as two:
            tries = [one.post("/api/v1/auth/session", json=wrong).status_code for _ in range(3)]
            assert tries == [401, 401, 429]
            assert two.post("/api/v1/auth/session", json=wrong).status_code == 401


def test_without_authentication_each_address_has_its_buckets(tmp_path: Any) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'open.db'}",
        auth=False,
        limit_write_rate=SLOW,
        limit_write_burst=2,
    )
    server = LiveServer(settings)
    server.start()
    try:
        with client_from(server, "127.0.0.1") as one, client_from(server, "127.0.0.3") as three:
            made = [one.post("/api/v1/tasks/", json={"title": "t"}).status_code for _ in range(3)]
            assert made == [201, 201, 429]
            assert three.post("/api/v1/tasks/", json={"title": "t"}).status_code == 201
    finally:
        server.stop()


# --- WebSocket caps -------------------------------------------------------------------------


async def first_frame(websocket: ClientConnection) -> dict[str, Any] | int:
    """The first frame's JSON, or the close code if the server closed before any data."""
    try:
        data: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        return data
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code


@pytest.fixture
def capped(sqlite_url: str) -> Iterator[SecureServer]:
    """Auth on; 2 WebSockets per principal, 3 per address, 4 in all."""
    with secure_server(
        sqlite_url, limit_ws_per_principal=2, limit_ws_per_ip=3, limit_ws_total=4
    ) as server:
        yield server


async def test_websocket_caps_per_principal_address_and_in_all(capped: SecureServer) -> None:
    """Every WebSocket counts (task, board and agent sockets); one past a cap is closed with
    1013 before any data, with a reason naming the cap; a place freed is taken again."""
    base = capped.ws_url
    agent, viewer, member = (capped.headers(role) for role in ("agent", "viewer", "member"))
    with capped.client("admin") as admin:
        task_id = admin.post("/api/v1/tasks/", json={"title": "watched"}).json()["id"]
    task = f"{base}/ws/tasks/{task_id}"
    elsewhere, further = ("127.0.0.2", 0), ("127.0.0.3", 0)
    async with open_ws(f"{base}/ws/agents/agent_bot", additional_headers=agent) as bot:
        assert (await receive_until_type(bot, "welcome"))["type"] == "welcome"
        async with open_ws(f"{base}/ws/board", additional_headers=agent) as bot_board:
            assert (await receive(bot_board))["event_type"] == "connection_established"
            async with open_ws(task, additional_headers=agent) as third:
                assert await first_frame(third) == 1013  # the agent's principal cap: 2
                assert "for this principal" in (third.close_reason or "")
            async with open_ws(task, additional_headers=viewer) as watcher:  # 3 from here
                assert (await receive(watcher))["event_type"] == "connection_established"
                async with open_ws(task, additional_headers=member) as fourth:
                    assert await first_frame(fourth) == 1013  # the address cap: 3
                    assert "from this address" in (fourth.close_reason or "")
                async with open_ws(task, additional_headers=member, local_addr=elsewhere) as ws:
                    assert (await receive(ws))["event_type"] == "connection_established"
                    async with open_ws(task, additional_headers=member, local_addr=further) as late:
                        assert await first_frame(late) == 1013  # the total cap: 4
                        assert "the server has 4 WebSockets open" in (late.close_reason or "")

        # bot_board is closed: its place is the agent's again once the server saw it go
        async def admitted() -> bool:
            async with open_ws(task, additional_headers=agent) as again:
                return await first_frame(again) != 1013

        await async_wait_until(admitted, message="the agent's closed socket to be counted out")


async def receive_until_type(websocket: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        if frame.get("type") == kind:
            return frame


async def test_without_authentication_sockets_are_capped_by_address(tmp_path: Any) -> None:
    """Anonymous sockets have no principal cap: the address cap holds them."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'open.db'}",
        auth=False,
        limit_ws_per_principal=1,
        limit_ws_per_ip=2,
    )
    server = LiveServer(settings)
    server.start()
    try:
        url = f"{server.ws_url}/ws/board"
        async with open_ws(url) as one, open_ws(url) as two:
            for websocket in (one, two):
                assert (await receive(websocket))["event_type"] == "connection_established"
            async with open_ws(url) as three:
                assert await first_frame(three) == 1013
            async with open_ws(url, local_addr=("127.0.0.2", 0)) as other:
                assert (await receive(other))["event_type"] == "connection_established"
    finally:
        server.stop()


async def test_insecure_servers_cap_sockets_too(tmp_path: Any) -> None:
    """--insecure turns the checks off, not the limits."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'insecure.db'}",
        insecure=True,
        limit_ws_per_ip=1,
    )
    server = LiveServer(settings)
    server.start()
    try:
        url = f"{server.ws_url}/ws/board"
        async with open_ws(url) as one:
            assert (await receive(one))["event_type"] == "connection_established"
            async with open_ws(url) as two:
                assert await first_frame(two) == 1013
    finally:
        server.stop()


# --- header timeout -------------------------------------------------------------------------


class Trickler(threading.Thread):
    """A raw socket that sends ``head`` one byte at a time (slowloris) until the server
    closes it, and keeps what the server answered."""

    def __init__(self, port: int, head: bytes, every: float, source: str = "127.0.0.1"):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=WAIT, source_address=(source, 0)
        )
        self.head, self.every = head, every
        self.answer = b""
        self.sent = 0
        self.closed = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(self.every)  # the attack's pace: one byte per period
        try:
            while True:
                try:
                    chunk = self.sock.recv(4096)
                except TimeoutError:
                    if self.sent < len(self.head):
                        self.sock.send(self.head[self.sent : self.sent + 1])
                        self.sent += 1
                    continue
                if not chunk:
                    break
                self.answer += chunk
        except OSError:
            pass  # reset by the server: closed too
        finally:
            self.sock.close()
            self.closed.set()


SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
SLOW_UPGRADE = (
    b"GET /ws/board HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
)


@pytest.fixture
def timed(sqlite_url: str) -> Iterator[LiveServer]:
    server = LiveServer(Settings(database_url=sqlite_url, header_timeout=2.0))
    server.start()
    yield server
    server.stop()


def test_slowloris_sockets_are_closed_while_health_answers(timed: LiveServer) -> None:
    """Sockets sending a request head (or a WebSocket upgrade) a byte at a time, and sockets
    sending nothing, are closed once the header timeout passes — those that had begun a
    request with a 408 — while /health answers throughout. The heads are far from complete
    when that happens (one byte per 0.2 s)."""
    slow = [Trickler(timed.port, SLOW_HEAD, 0.2) for _ in range(20)]
    slow += [Trickler(timed.port, SLOW_UPGRADE, 0.2) for _ in range(10)]
    silent = [Trickler(timed.port, b"", 0.2) for _ in range(10)]
    for trickler in slow + silent:
        trickler.start()
    with httpx.Client(base_url=timed.url, timeout=10) as http:

        def everyone_closed() -> bool:
            assert http.get("/health").status_code == 200  # while they hold their sockets
            return all(t.closed.is_set() for t in slow + silent)

        wait_until(everyone_closed, message="the server to close every slow socket")
    for trickler in slow:
        assert trickler.answer.startswith(b"HTTP/1.1 408 "), trickler.answer[:80]
        assert b"connection: close" in trickler.answer.lower()
        assert 0 < trickler.sent < len(trickler.head)  # cut off mid-head, not answered
    for trickler in silent:
        assert trickler.answer == b""  # nothing begun: closed without an answer


def test_a_keep_alive_connection_gets_the_header_timeout_again(timed: LiveServer) -> None:
    """After a response the clock starts again: a request that follows in time is served,
    a head that dawdles after it is cut off too."""
    with socket.create_connection(("127.0.0.1", timed.port), timeout=WAIT) as sock:
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for _ in range(3):
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # and no more
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")


def read_response(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return answer


@pytest.fixture
def per_address(sqlite_url: str) -> Iterator[LiveServer]:
    """5 connections per peer address; a header timeout no test here waits for."""
    server = LiveServer(
        Settings(database_url=sqlite_url, limit_connections_per_ip=5, header_timeout=120)
    )
    server.start()
    yield server
    server.stop()


def health_from(port: int, source: str) -> bool:
    """Whether GET /health on a new connection from ``source`` is answered."""
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(source, 0)
        ) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:  # reset: closed as soon as accepted
        return False


async def hold_five(server: LiveServer, stack: contextlib.AsyncExitStack) -> None:
    """Five connections from 127.0.0.1 until ``stack`` closes, one of each kind the front
    protocol hands over to: two silent sockets, a WebSocket upgrade in one read, one split
    over two reads (through the HTTP parser), and a keep-alive HTTP connection."""
    silent = [stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))]
    silent.append(stack.enter_context(socket.create_connection(("127.0.0.1", server.port))))
    whole = await stack.enter_async_context(open_ws(f"{server.ws_url}/ws/board"))
    assert (await receive(whole))["event_type"] == "connection_established"
    split = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
    split.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    split.sendall(SLOW_UPGRADE[:30])
    await asyncio.sleep(0.05)  # not a wait for anything: makes the head arrive in two reads
    split.sendall(SLOW_UPGRADE[30:])
    assert split.recv(12) == b"HTTP/1.1 101"
    keep_alive = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
    keep_alive.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_response(keep_alive).startswith(b"HTTP/1.1 200")


async def test_one_address_holds_at_most_its_connections(per_address: LiveServer) -> None:
    """Past 5 connections from 127.0.0.1 a new one is closed as soon as accepted, while
    another address is served; once they close, 127.0.0.1 has exactly its 5 again (each was
    counted out once, whichever protocol it ended with)."""
    port = per_address.port
    for _ in range(2):
        async with contextlib.AsyncExitStack() as stack:
            await hold_five(per_address, stack)
            assert not await asyncio.to_thread(health_from, port, "127.0.0.1")
            assert await asyncio.to_thread(health_from, port, "127.0.0.2")
        await async_wait_until(
            lambda: asyncio.to_thread(health_from, port, "127.0.0.1"),
            message="127.0.0.1's connections to be counted out",
        )


# --- frame floods ---------------------------------------------------------------------------


@pytest.fixture
def frame_limited(sqlite_url: str) -> Iterator[LiveServer]:
    """20 client frames per socket, then one per 100 s."""
    server = LiveServer(
        Settings(database_url=sqlite_url, limit_ws_frame_rate=SLOW, limit_ws_frame_burst=20)
    )
    server.start()
    yield server
    server.stop()


async def drain_until_closed(websocket: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    with pytest.raises(ConnectionClosed):
        while True:
            frames.append(json.loads(await asyncio.wait_for(websocket.recv(), 10)))
    return frames


@pytest.mark.parametrize("path", ["/ws/tasks/{task_id}", "/ws/board"])
async def test_a_frame_flood_gets_an_error_then_4429(frame_limited: LiveServer, path: str) -> None:
    """Past its frame burst a viewer socket gets an ``error`` event (rate_limited) and a close
    with 4429; each of its frames before that was answered, and another socket goes on."""
    with httpx.Client(base_url=frame_limited.url) as http:
        task_id = http.post("/api/v1/tasks/", json={"title": "flooded"}).json()["id"]
    url = frame_limited.ws_url + path.format(task_id=task_id)
    async with open_ws(url) as flood, open_ws(url) as calm:
        await receive_until(flood, "connection_established")
        await receive_until(calm, "connection_established")
        for n in range(100):
            try:
                await flood.send(json.dumps({"type": "ping", "timestamp": n}))
            except ConnectionClosed:
                break
        frames = await drain_until_closed(flood)
        assert flood.close_code == 4429
        assert "too many frames" in (flood.close_reason or "")
        pongs = [f for f in frames if f["event_type"] == "pong"]
        assert [p["data"]["client_timestamp"] for p in pongs] == list(range(20))
        errors = [f for f in frames if f["event_type"] == "error"]
        assert [e["data"]["code"] for e in errors] == ["rate_limited"]
        assert frames.index(errors[0]) > frames.index(pongs[-1])
        await calm.send(json.dumps({"type": "ping"}))
        assert (await receive(calm))["event_type"] == "pong"


async def test_an_agent_frame_flood_gets_an_error_then_4429(frame_limited: LiveServer) -> None:
    async with open_ws(f"{frame_limited.ws_url}/ws/agents/agent_flood") as agent:
        await receive_until_type(agent, "welcome")
        for n in range(100):
            try:
                await agent.send(json.dumps({"type": "ping", "timestamp": n}))
            except ConnectionClosed:
                break
        frames = await drain_until_closed(agent)
        assert agent.close_code == 4429
        assert [f["client_timestamp"] for f in frames if f["type"] == "pong"] == list(range(20))
        assert [f["code"] for f in frames if f["type"] == "error"] == ["rate_limited"]
    with httpx.Client(base_url=frame_limited.url) as http:

        def offline() -> bool:
            agent = http.get("/api/v1/agents/agent_flood").json()
            return bool(agent["status"] == "offline")

        wait_until(offline, message="the flooding agent to be offline")
