"""The first bytes of a connection pick its protocol: WebSocket upgrades skip the HTTP
parser, everything else is served by uvicorn's as before."""

import base64
import os
import socket

import httpx
import pytest

from taskline.front_protocol import is_websocket_upgrade
from tests.support.server import LiveServer

KEY = base64.b64encode(os.urandom(16)).decode()


def head(*lines: str) -> bytes:
    return "\r\n".join(["GET /ws/board HTTP/1.1", "Host: localhost", *lines]).encode()


@pytest.mark.parametrize(
    ("request_head", "expected"),
    [
        (head("Upgrade: websocket", "Connection: Upgrade"), True),
        (head("upgrade: WebSocket", "connection: keep-alive, Upgrade"), True),
        (head("Upgrade: websocket"), False),  # no Connection: upgrade
        (head("Connection: Upgrade", "Upgrade: h2c"), False),
        (head("Connection: Upgrade"), False),
        (b"POST /ws/board HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade", False),
    ],
)
def test_what_counts_as_a_websocket_upgrade(request_head: bytes, expected: bool) -> None:
    """Only a GET naming both ``Upgrade: websocket`` and ``Connection: upgrade`` is one (the
    test uvicorn applies)."""
    assert is_websocket_upgrade(request_head) is expected


def raw(server: LiveServer, *parts: bytes) -> bytes:
    """Send ``parts`` in separate writes and read the answer's head."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in parts:
            sock.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def test_upgrades_whole_or_split_and_plain_http_are_all_served(sqlite_server: LiveServer) -> None:
    """A whole upgrade head, one split over two writes, and HTTP requests (a plain GET, a
    POST with a body, a GET that only mentions an upgrade) are answered as they should be."""
    upgrade = (
        f"GET /ws/board HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    assert raw(sqlite_server, upgrade).startswith(b"HTTP/1.1 101")
    assert raw(sqlite_server, upgrade[:40], upgrade[40:]).startswith(b"HTTP/1.1 101")
    bad_key = upgrade.replace(KEY.encode(), b"short")
    assert raw(sqlite_server, bad_key).startswith(b"HTTP/1.1 400")
    assert raw(
        sqlite_server, b"GET /health HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\n\r\n"
    ).startswith(b"HTTP/1.1 200")
    with httpx.Client(base_url=sqlite_server.url) as http:
        assert http.get("/health").status_code == 200
        created = http.post("/api/v1/tasks/", json={"title": "through the front"})
        assert created.status_code == 201
