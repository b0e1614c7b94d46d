"""Request round trips: an agent asks, a person answers, the agent resumes; with 100 other
open requests in the inbox, on SQLite and PostgreSQL, beside baselines from the same run.

A server that checks who asks in its own process (CPU 0; this client on CPU 1), an agent
token issued in its database before it starts. The agent is the SDK: one ``run`` on a task
assigned to it, calling ``run.ask(question, choices=...)`` again and again (each opens a
request and waits with the long poll). The person is a raw asyncio client with an admin
token: it follows ``/ws/board``, and on each ``request.opened`` of the agent's task posts
``POST /api/v1/requests/{id}/answer`` on a keep-alive connection. A round trip is from the
call of ``run.ask`` until it returns the answer: the open (a write), the person seeing it, the
answer (a write), the wake-up of the wait and its reply.

Measured in the same run, on the same server:

- ``empty``: the same round trips while no other request is open (first);
- ``loaded``: then ``--others`` (100) requests are opened on 10 other tasks and left open,
  and the round trips are measured again (the inbox the person sees holds them all);
- ``write``: after every round trip of both, the person's connection posts one event
  (``POST /api/v1/tasks/{id}/events``, the plain REST write round trip).

Reported: p50/p99 of each, and the ratios loaded / empty and loaded / write; and where a
loaded round trip's time goes (p50s): until the person sees the request on the board
(``seen``: the agent's open, the board's delivery), the answer's POST (``answer``), and from
its reply until ``run.ask`` returns (``resumed``: the ``request`` frame on the agent's
connection, or the long poll's reply).

    .venv/bin/python benchmarks/requests.py                  # SQLite, then PostgreSQL
    .venv/bin/python benchmarks/requests.py --backend sqlite --samples 500
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import Access, prepare
from claims import agent_tokens
from rawhttp import (
    Server,
    http_request,
    pin_self,
    read_response,
    scratch_postgres,
    ws_handshake,
)

from taskline.sdk import AsyncClient

AGENT = "agent_bench0"
CHOICES = ["yes", "no"]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Person:
    """The person: a board stream and one keep-alive connection for writes."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers
        self.task_id = ""
        self.answered = 0
        #: when the last question was seen on the board, and when its answer was answered
        self.seen_at = self.answered_at = 0.0
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._board: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(ws_handshake("/ws/board", self.headers))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self._board = (reader, writer)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self._streams is not None
        reader, writer = self._streams
        payload = b"" if body is None else json.dumps(body).encode()
        async with self._lock:
            writer.write(http_request(method, path, payload, headers=self.headers))
            status, answer = await read_response(reader)
        return status, json.loads(answer) if answer else None

    async def answer_forever(self) -> None:
        """Answer every question opened on :attr:`task_id`, as soon as the board shows it."""
        while True:
            payload = await self._next_text()
            message = json.loads(payload)
            for item in message if isinstance(message, list) else [message]:
                if not isinstance(item, dict) or item.get("event_type") != "request.opened":
                    continue
                request = item.get("data") or {}
                if request.get("task_id") != self.task_id:
                    continue
                self.seen_at = time.perf_counter()
                status, body = await self.call(
                    "POST", f"/api/v1/requests/{request['id']}/answer", {"answer": "yes"}
                )
                assert status == 200, body
                self.answered_at = time.perf_counter()
                self.answered += 1

    async def _next_text(self) -> bytes:
        """The board's next text frame; pings are answered (or the server drops the board
        after its ping timeout), a close ends the person."""
        assert self._board is not None
        reader, writer = self._board
        while True:
            first = await reader.readexactly(2)
            opcode, size = first[0] & 0x0F, first[1] & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(size)
            if opcode == 0x1:
                return payload
            if opcode == 0x8:
                raise ConnectionError(f"the board stream closed: {payload[2:]!r}")
            if opcode == 0x9:  # ping: a masked pong with the same payload (< 126 bytes)
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)

    async def close(self) -> None:
        for pair in (self._streams, self._board):
            if pair is not None:
                pair[1].close()


async def round_trips(
    run: Any, count: int, answering: "asyncio.Task[None]", person: Person | None = None
) -> dict[str, list[float]]:
    """``count`` questions asked and answered; with ``person``, a REST write after each
    (on the agent's task, by the person)."""
    asks: list[float] = []
    writes: list[float] = []
    parts: dict[str, list[float]] = {"seen": [], "answer": [], "resumed": []}
    for n in range(count):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(60):
                answer = await run.ask(f"Go on with step {n}?", choices=CHOICES)
        except TimeoutError:
            failed = answering.exception() if answering.done() else None
            raise RuntimeError(f"question {n} not answered in 60 s (person: {failed!r})") from None
        ended = time.perf_counter()
        asks.append(ended - started)
        assert answer == "yes", answer
        if person is not None:
            parts["seen"].append(person.seen_at - started)
            parts["answer"].append(person.answered_at - person.seen_at)
            parts["resumed"].append(ended - person.answered_at)
            started = time.perf_counter()
            status, body = await person.call(
                "POST",
                f"/api/v1/tasks/{person.task_id}/events",
                {"event_type": "custom", "data": {"name": "bench", "value": n}},
            )
            writes.append(time.perf_counter() - started)
            assert status in (200, 201), body
    return {"asks": asks, "writes": writes, **parts}


async def measure(database_url: str, samples: int, others: int, tmp: Path) -> dict[str, Any]:
    access: Access = await prepare(database_url, True)
    (agent_token,) = await agent_tokens(database_url, 1)
    server = Server(database_url, env=access.server_env)
    server.start(tmp / f"server-{time.monotonic_ns()}.log")
    base = f"http://127.0.0.1:{server.port}"
    person = Person(server.port, access.headers)
    try:
        access.check(base)
        await person.start()
        status, agent = await person.call(
            "POST", "/api/v1/agents/", {"id": AGENT, "name": "bench agent"}
        )
        assert status == 201, agent
        status, task = await person.call(
            "POST", "/api/v1/tasks/", {"title": "asks", "assigned_agent_id": AGENT}
        )
        assert status == 201, task
        person.task_id = task["id"]
        answering = asyncio.create_task(person.answer_forever())
        async with (
            AsyncClient(base, token=agent_token, timeout=60) as client,
            client.run(person.task_id, agent=AGENT) as run,
        ):
            await round_trips(run, max(5, samples // 20), answering)  # warm up
            empty = await round_trips(run, samples, answering, person)
            for t in range(10):
                status, other = await person.call("POST", "/api/v1/tasks/", {"title": f"o{t}"})
                assert status == 201, other
                for n in range(others // 10):
                    status, body = await person.call(
                        "POST",
                        f"/api/v1/tasks/{other['id']}/requests",
                        {"kind": "question", "question": f"other {t}.{n}?"},
                    )
                    assert status == 201, body
            status, inbox = await person.call("GET", "/api/v1/requests?status=open")
            assert status == 200 and len(inbox["requests"]) == others, inbox
            loaded = await round_trips(run, samples, answering, person)
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
    finally:
        await person.close()
        server.stop()
    figures: dict[str, Any] = {}
    for name, values in (
        ("empty", empty["asks"]),
        ("loaded", loaded["asks"]),
        ("write", empty["writes"] + loaded["writes"]),
    ):
        figures[name] = {
            "p50_ms": percentile(values, 0.5) * 1e3,
            "p99_ms": percentile(values, 0.99) * 1e3,
        }
    # where a loaded round trip's time goes (p50 of each part): from the call of ask until
    # the person sees the request on the board; the answer's POST; from its reply until ask
    # returns (negative: the agent had the answer before the person had the reply)
    figures["loaded_parts_p50_ms"] = {
        part: percentile(loaded[part], 0.5) * 1e3 for part in ("seen", "answer", "resumed")
    }
    for name in ("empty", "write"):
        figures[f"loaded_vs_{name}"] = {
            q: figures["loaded"][f"{q}_ms"] / figures[name][f"{q}_ms"] for q in ("p50", "p99")
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300, help="round trips per phase")
    parser.add_argument("--others", type=int, default=100, help="other open requests")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="(both)"
    )
    args = parser.parse_args()
    if args.others % 10:
        parser.error("--others must be a multiple of 10 (10 tasks take them)")
    pinned = pin_self(1)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(
        f"{args.samples} round trips per phase, {args.others} other open requests, auth on, "
        "server on CPU 0" + (", client on CPU 1" if pinned else ""),
        flush=True,
    )
    results = {}
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            url = (
                stack.enter_context(scratch_postgres())
                if backend == "postgresql"
                else f"sqlite+aiosqlite:///{Path(tmp) / 'requests.db'}"
            )
            result = asyncio.run(measure(url, args.samples, args.others, Path(tmp)))
        results[backend] = result
        line = "  ".join(
            f"{name} p50 {result[name]['p50_ms']:.1f} ms p99 {result[name]['p99_ms']:.1f} ms"
            for name in ("empty", "loaded", "write")
        )
        ratios = "  ".join(
            f"loaded/{name} p50 {result[f'loaded_vs_{name}']['p50']:.2f}x "
            f"p99 {result[f'loaded_vs_{name}']['p99']:.2f}x"
            for name in ("empty", "write")
        )
        parts = "  ".join(f"{k} {v:.1f} ms" for k, v in result["loaded_parts_p50_ms"].items())
        print(f"{backend:10}  {line}\n{'':10}  {ratios}\n{'':10}  p50 parts: {parts}", flush=True)
    print(json.dumps({"samples": args.samples, "others": args.others, "results": results}))


if __name__ == "__main__":
    main()
