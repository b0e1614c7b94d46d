"""Webhooks: delivery throughput to a slow receiver, and what sending them costs the board,
in one run (SQLite, then PostgreSQL).

A server that checks who asks, in its own process (CPU 0; this process, the client and the
receiver, on CPU 1). A publisher POSTs ``--events`` single events to one task at
``--rate`` events/s on one keep-alive connection while a prober asks ``GET /health`` one
request after another. Phase *without*: no webhook. Phase *with*: a webhook takes every
event and a receiver in this process answers each delivery after ``--delay`` seconds (a slow
receiver: at most ``TASKLINE_WEBHOOK_CONCURRENCY / delay`` deliveries/s); the prober keeps
going until every delivery arrived. The figures: deliveries/s (first publish to last
delivery) against that ceiling, duplicates (should be 0), and the p50/p99 of ``/health``
and of the publishes with webhooks as ratios of without.

    .venv/bin/python benchmarks/webhooks.py                         # both backends
    .venv/bin/python benchmarks/webhooks.py --backend sqlite --events 1000 --delay 0.1
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import prepare
from rawhttp import Server, http_request, pin_self, read_response, scratch_postgres


@dataclass
class Receiver:
    """A slow webhook receiver: raw asyncio HTTP/1.1, answers 200 after ``delay``."""

    delay: float
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    last_at: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                await asyncio.sleep(self.delay)
                key = headers.get("webhook-id", "")
                if key in self.ids:
                    self.duplicates += 1
                self.ids.add(key)
                self.last_at = time.perf_counter()
                if self.expected and len(self.ids) >= self.expected:
                    self.done.set()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        writer.close()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    if len(ordered) < 2:
        return (ordered[0], ordered[0]) if ordered else (0.0, 0.0)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def _call(
    port: int, method: str, path: str, body: dict[str, object] | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        payload = json.dumps(body).encode() if body is not None else b""
        writer.write(http_request(method, path, payload, close=True, headers=headers))
        return await read_response(reader)
    finally:
        writer.close()


async def _probe(port: int, stop: asyncio.Event) -> list[float]:
    """``GET /health`` one after another on one connection until ``stop``; latencies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    try:
        while not stop.is_set():
            started = time.perf_counter()
            writer.write(http_request("GET", "/health"))
            status, _ = await read_response(reader)
            assert status == 200, status
            samples.append(time.perf_counter() - started)
            await asyncio.sleep(0.002)
    finally:
        writer.close()
    return samples


async def _publish(
    port: int, task_id: str, events: int, rate: float, headers: dict[str, str], tag: str
) -> list[float]:
    """POST ``events`` single events at ``rate``/s on one connection; their latencies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    samples = []
    path = f"/api/v1/tasks/{task_id}/events"
    start = time.perf_counter()
    try:
        for n in range(events):
            due = start + n / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            body = json.dumps({"event_type": "custom", "data": {"name": tag, "value": n}}).encode()
            sent = time.perf_counter()
            writer.write(http_request("POST", path, body, headers=headers))
            status, answer = await read_response(reader)
            assert status == 200, (status, answer[:200])
            samples.append(time.perf_counter() - sent)
    finally:
        writer.close()
    return samples


async def run_backend(
    backend: str, database_url: str, args: argparse.Namespace
) -> dict[str, object]:
    access = await prepare(database_url, True)
    headers = access.headers
    receiver = Receiver(delay=args.delay)
    listener = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    hook_port = listener.sockets[0].getsockname()[1]
    env = {
        **access.server_env,
        "TASKLINE_WEBHOOK_CONCURRENCY": str(args.concurrency),
        "TASKLINE_WEBHOOK_POLL_INTERVAL": "0.5",
    }
    server = Server(database_url, env=env)
    with tempfile.TemporaryDirectory() as scratch:
        server.start(Path(scratch) / "server.log")
        try:
            status, body = await _call(
                server.port, "POST", "/api/v1/tasks/", {"title": "bench"}, headers
            )
            assert status == 201, body
            task_id = json.loads(body)["id"]

            stop = asyncio.Event()
            prober = asyncio.create_task(_probe(server.port, stop))
            without_publish = await _publish(
                server.port, task_id, args.events, args.rate, headers, "without"
            )
            stop.set()
            without_health = await prober

            status, body = await _call(
                server.port,
                "POST",
                "/api/v1/webhooks/",
                {"url": f"http://127.0.0.1:{hook_port}/hook", "events": ["custom"]},
                headers,
            )
            assert status == 201, body
            receiver.expected = args.events
            stop = asyncio.Event()
            prober = asyncio.create_task(_probe(server.port, stop))
            started = time.perf_counter()
            with_publish = await _publish(
                server.port, task_id, args.events, args.rate, headers, "with"
            )
            published = time.perf_counter() - started
            await asyncio.wait_for(receiver.done.wait(), args.events / 10 + 120)
            stop.set()
            with_health = await prober
            seconds = receiver.last_at - started
        finally:
            server.stop()
            listener.close()
    h0, h1 = _percentiles(without_health), _percentiles(with_health)
    p0, p1 = _percentiles(without_publish), _percentiles(with_publish)
    ceiling = args.concurrency / args.delay
    result: dict[str, object] = {
        "backend": backend,
        "events": args.events,
        "rate": args.rate,
        "receiver_delay_s": args.delay,
        "concurrency": args.concurrency,
        "published_s": round(published, 2),
        "deliveries_per_s": round(args.events / seconds, 1),
        "ceiling_per_s": round(ceiling, 1),
        "duplicates": receiver.duplicates,
        "health_p50_ms": [round(h0[0], 2), round(h1[0], 2)],
        "health_p99_ms": [round(h0[1], 2), round(h1[1], 2)],
        "health_p99_ratio": round(h1[1] / h0[1], 2) if h0[1] else None,
        "publish_p99_ms": [round(p0[1], 2), round(p1[1], 2)],
        "publish_p99_ratio": round(p1[1] / p0[1], 2) if p0[1] else None,
    }
    return result


def report(result: dict[str, object]) -> None:
    h0, h1 = result["health_p99_ms"]  # type: ignore[misc]
    p0, p1 = result["publish_p99_ms"]  # type: ignore[misc]
    print(
        f"{result['backend']:>10}: {result['deliveries_per_s']} deliveries/s "
        f"(ceiling {result['ceiling_per_s']}: {result['concurrency']} in flight, "
        f"{result['receiver_delay_s']} s each), {result['duplicates']} duplicates; "
        f"/health p99 {h0} -> {h1} ms ({result['health_p99_ratio']}x), "
        f"publish p99 {p0} -> {p1} ms ({result['publish_p99_ratio']}x) "
        f"at {result['rate']:g} events/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s published")
    parser.add_argument("--delay", type=float, default=0.05, help="receiver's seconds per answer")
    parser.add_argument("--concurrency", type=int, default=8, help="TASKLINE_WEBHOOK_CONCURRENCY")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    pin_self(1)
    results = []
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            results.append(asyncio.run(run_backend("sqlite", url, args)))
            report(results[-1])
    if args.backend in ("postgresql", "both"):
        with scratch_postgres() as url:
            results.append(asyncio.run(run_backend("postgresql", url, args)))
            report(results[-1])
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
