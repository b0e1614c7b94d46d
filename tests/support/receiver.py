"""A real HTTP receiver for webhook tests: a stdlib threading HTTP server on a free loopback
port that records every request and answers what the test scripts (a status per request,
optionally after a delay)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

__all__ = ["Received", "Receiver", "receiver"]


@dataclass
class Received:
    """One request as it arrived, and the status it was answered with."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  #: time.monotonic() on arrival

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """What the server received. ``answer(path, requests so far on that path, requests so
    far with that webhook-id)`` chooses the status (default 200); ``delay`` seconds pass
    before each answer."""

    port: int = 0
    answer: Callable[[str, int, int], int] = lambda path, n, same: 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def delivered(self, path: str) -> dict[str, int]:
        """How many 2xx answers each ``webhook-id`` got on ``path``."""
        counts: dict[str, int] = {}
        for request in self.on(path):
            if 200 <= request.status < 300:
                key = request.headers["webhook-id"]
                counts[key] = counts.get(key, 0) + 1
        return counts


@contextmanager
def receiver(
    answer: Callable[[str, int, int], int] | None = None, *, delay: float = 0.0
) -> Iterator[Receiver]:
    """Run a :class:`Receiver` until the block ends."""
    state = Receiver(delay=delay)
    if answer is not None:
        state.answer = answer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            key = self.headers.get("webhook-id")
            with state.lock:
                number = sum(1 for r in state.requests if r.path == self.path)
                same = sum(1 for r in state.requests if r.headers.get("webhook-id") == key)
            status = state.answer(self.path, number, same)
            if state.delay:
                time.sleep(state.delay)  # the receiver's own slowness, not a test's wait
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                state.requests.append(Received(self.path, headers, body, status, arrived))
            reply = b"ok" if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a sender closing its keep-alive connection (the server stops, say)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
