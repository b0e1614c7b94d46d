"""Taskline's own uvicorn WebSocket protocol and the fan-out's direct channel, on real sockets.

Raw-socket tests check the handshake and keepalive at the byte level; the others use the
``websockets`` client. The fallback path (uvicorn's own protocol, FastAPI routes, a writer task
per connection) is run through the same delivery checks.
"""

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from taskline.realtime.channel import text_frame
from taskline.settings import Settings
from tests.support.rest import new_task, publish
from tests.support.server import LiveServer
from tests.support.ws import collect_events, open_ws, receive, receive_until


def custom(n: int) -> dict[str, Any]:
    return {"event_type": "custom", "data": {"name": "n", "value": n}}


def _serve(tmp_path: Path, **options: Any) -> Iterator[LiveServer]:
    settings_options = options.pop("settings", {})
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}", **settings_options
    )
    live = LiveServer(settings, **options)
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def client(sqlite_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        yield http


# --- raw sockets --------------------------------------------------------------------------------


def raw_request(port: int, head: str) -> tuple[bytes, socket.socket]:
    """Send a request head; return the response head (up to the blank line) and the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head.encode("latin-1"))
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received, sock


def upgrade_head(path: str, **overrides: str | None) -> str:
    headers = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    headers.update(overrides)  # type: ignore[arg-type]
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items() if value is not None]
    return "\r\n".join(lines) + "\r\n\r\n"


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one server frame (unmasked): its opcode and payload."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first, second = exactly(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", exactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", exactly(8))[0]
    return first & 0x0F, exactly(size)


@pytest.mark.parametrize(
    ("overrides", "status", "says"),
    [
        ({"Sec-WebSocket-Key": None}, b"400", b"Sec-WebSocket-Key"),
        ({"Sec-WebSocket-Key": "dG9vIHNob3J0"}, b"400", b"Sec-WebSocket-Key"),
        ({"Sec-WebSocket-Version": "8"}, b"426", b"version 13"),
        ({"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"}, b"101", b""),
    ],
)
def test_handshake_is_checked(
    sqlite_server: LiveServer,
    client: httpx.Client,
    overrides: dict[str, str | None],
    status: bytes,
    says: bytes,
) -> None:
    """A bad upgrade gets an HTTP error naming the problem; a valid one (any case, token
    lists) gets 101 with the RFC 6455 accept key."""
    task_id = new_task(client)
    head = upgrade_head(f"/ws/tasks/{task_id}", **overrides)
    response, sock = raw_request(sqlite_server.port, head)
    with sock:
        status_line = response.split(b"\r\n", 1)[0]
        assert status_line.split(b" ")[1] == status, response
        if status == b"426":
            assert b"Sec-WebSocket-Version: 13" in response
        if status != b"101":
            body = response.split(b"\r\n\r\n", 1)[1] + sock.recv(4096)
            assert says in body
        else:
            assert b"Sec-WebSocket-Accept: " in response
            assert b"permessage-deflate" not in response  # compression is never negotiated
            opcode, payload = read_frame(sock)
            assert opcode == 0x1
            assert json.loads(payload)["event_type"] == "connection_established"


def test_keepalive_pings_and_closes_1011_without_pong(tmp_path: Path) -> None:
    """With ws_ping_interval/ws_ping_timeout set, a client that never answers pings is closed
    with 1011 ("keepalive ping timeout")."""
    for live in _serve(tmp_path, ws_ping_interval=0.3, ws_ping_timeout=0.3):
        with httpx.Client(base_url=live.url, timeout=10) as http:
            task_id = new_task(http)
        response, sock = raw_request(live.port, upgrade_head(f"/ws/tasks/{task_id}"))
        with sock:
            assert b" 101 " in response.split(b"\r\n", 1)[0]
            opcodes = []
            while True:
                opcode, payload = read_frame(sock)
                opcodes.append(opcode)
                if opcode == 0x8:
                    assert struct.unpack("!H", payload[:2])[0] == 1011
                    assert b"keepalive" in payload[2:]
                    break
            assert 0x9 in opcodes  # a ping came first


async def test_unknown_websocket_path_is_refused_with_403(sqlite_server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_ws(f"{sqlite_server.ws_url}/ws/nowhere"):
            pass
    assert refused.value.response.status_code == 403


async def test_fragmented_client_message_is_reassembled(
    sqlite_server: LiveServer, client: httpx.Client
) -> None:
    task_id = new_task(client)
    async with open_ws(f"{sqlite_server.ws_url}/ws/tasks/{task_id}") as ws:
        await receive_until(ws, "connection_established")
        await ws.send(['{"ty', 'pe": "p', 'ing"}'])  # three frames, one message
        answer = await receive(ws)
        assert answer["event_type"] == "pong"


def test_text_frame_lengths() -> None:
    """The three length encodings of RFC 6455 §5.2."""
    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert text_frame(b"x" * 70_000)[:10] == b"\x81\x7f" + struct.pack("!Q", 70_000)


# --- delivery through the direct channel and through the fallback ------------------------------


async def test_events_committed_within_the_flush_interval_share_one_frame(tmp_path: Path) -> None:
    """A batch subscriber gets the events of three separate publishes, committed within one
    flush interval, as one array frame, in seq order."""
    for live in _serve(tmp_path, settings={"flush_interval": 5.0}):
        with httpx.Client(base_url=live.url, timeout=10) as http:
            task_id = new_task(http)
            async with open_ws(f"{live.ws_url}/ws/tasks/{task_id}?batch=1") as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert [m["event_type"] for m in first] == ["connection_established"]
                seqs = [publish(http, task_id, custom(k))[0] for k in range(3)]
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert [m["seq"] for m in frame] == seqs == [2, 3, 4]


@pytest.mark.parametrize("path", ["direct", "direct-immediate", "fallback"])
async def test_three_clients_get_every_event_in_order(tmp_path: Path, path: str) -> None:
    """Single-event and batch subscribers receive everything once, in order: through the
    direct channel (flushed every 10 ms, or as soon as the loop is free) and through uvicorn's
    own protocol with a writer task per connection."""
    options: dict[str, Any] = {}
    if path == "direct-immediate":
        options = {"settings": {"flush_interval": 0}}
    if path == "fallback":
        options = {"fast_lane": False, "ws": "websockets-sansio"}
    for live in _serve(tmp_path, **options):
        with httpx.Client(base_url=live.url, timeout=10) as http:
            task_id = new_task(http)
            base = f"{live.ws_url}/ws/tasks/{task_id}"
            async with (
                open_ws(base) as one,
                open_ws(base) as two,
                open_ws(f"{base}?batch=1") as three,
            ):
                for ws in (one, two):
                    await receive_until(ws, "connection_established")
                await asyncio.wait_for(three.recv(), 10)
                for k in range(10):
                    publish(http, task_id, *[custom(k * 3 + i) for i in range(3)])
                singles = [await collect_events(ws, 31) for ws in (one, two)]
                batched: list[int] = []
                while not batched or batched[-1] < 31:
                    frame = json.loads(await asyncio.wait_for(three.recv(), 10))
                    batched += [m["seq"] for m in frame if m.get("seq") is not None]
        for events in singles:
            assert [e["seq"] for e in events] == list(range(2, 32))
        assert batched == list(range(2, 32))
