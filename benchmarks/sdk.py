"""SDK benchmark: events/s one run publishes with every event acknowledged, and the latency
from ``run.progress()`` to a WebSocket subscriber.

Usage: ``.venv/bin/python benchmarks/sdk.py [--events 20000] [--rounds 3] [--samples 500]
[--auth on|off]``

The server runs in its own process on a fresh SQLite file (pinned to CPU 0 when there are two
or more); this client (the run and the subscriber, one event loop) runs on CPU 1. Baselines
are measured in the same run, against the same server:

- throughput: the same events through ``POST /api/v1/tasks/{id}/events``, one per request
  (what an agent without the SDK's batching does), and, for reference, 500 per request;
- latency: one event published with ``POST /api/v1/tasks/{id}/events`` to the subscriber.

A throughput round counts from the first ``emit`` until ``flush()`` returns, i.e. until the
server has acknowledged (committed) every event. Next to the wall-clock rate it prints the
server process's CPU time per event (from ``/proc``), which a busy machine disturbs much less:
``1 / cpu_per_event`` is the rate the server would reach with CPU 0 to itself. Latency samples
are spaced out so each event travels alone (the SDK sends at once when nothing is in flight).

The server checks who asks (``--auth on``, the default): an admin token is issued in its
database before it starts, and the SDK client (``token=``) and the plain HTTP baselines send
it; ``--auth off`` runs it with ``TASKLINE_AUTH=false`` and sends none (``token=""``, so
neither ``TASKLINE_TOKEN`` nor a stored token is sent).
"""

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from taskline.sdk import AsyncClient, DeliveryOptions, Subscription

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import Access, add_auth_option, prepare_sync

EVENT = {"event_type": "custom", "data": {"name": "bench", "value": 0}}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Rate:
    """Events per wall-clock second and the server's CPU microseconds per event."""

    def __init__(self, events: int, seconds: float, server_cpu: float) -> None:
        self.per_second = events / seconds
        self.cpu_us = server_cpu / events * 1e6

    def __str__(self) -> str:
        return f"{self.per_second:8.0f}/s   server CPU {self.cpu_us:6.0f} us/event"


def start_server(url: str, port: int, access: Access, log: Path) -> subprocess.Popen[bytes]:
    """The server, its output in ``log`` (it holds the first-run sign-in link, not wanted
    among the figures)."""
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 else []
    command = [*pin, sys.executable, "-m", "taskline", "serve", "--port", str(port)]
    command += ["--database-url", url, "--log-level", "warning"]
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, env=access.server_environ(), stdout=output, stderr=subprocess.STDOUT
        )
    if pin:
        os.sched_setaffinity(0, {1})
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            httpx.get(f"{base}/health", timeout=1).raise_for_status()
            access.check(base)
            return server
        except httpx.HTTPError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}")


async def sdk_throughput(client: AsyncClient, count: int, pid: int) -> Rate:
    """Events/s of one run, from the first emit until every event is acknowledged."""
    task = await client.create_task("SDK throughput")
    async with client.run(task.id, agent="agent_bench") as run:
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        for n in range(count):
            await run.emit("custom", {"name": "bench", "value": n})
        await run.flush()
        rate = Rate(count, time.perf_counter() - started, cpu_seconds(pid) - cpu)
    stored = (await client.events(task.id, types="custom", limit=1)).last_seq
    assert stored >= count, f"only {stored} events in the log"
    return rate


async def rest_throughput(
    base: str, headers: dict[str, str], count: int, per_request: int, pid: int
) -> Rate:
    """Events/s through POST /tasks/{id}/events, ``per_request`` events per request."""
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http:
        task_id = (await http.post("/api/v1/tasks/", json={"title": "REST"})).json()["id"]
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        for first in range(0, count, per_request):
            batch = [EVENT] * min(per_request, count - first)
            response = await http.post(f"/api/v1/tasks/{task_id}/events", json=batch)
            response.raise_for_status()
        return Rate(count, time.perf_counter() - started, cpu_seconds(pid) - cpu)


async def latency(
    client: AsyncClient, base: str, headers: dict[str, str], samples: int
) -> tuple[list[float], list[float]]:
    """Milliseconds from publishing one event to its arrival at a subscriber: through
    ``run.progress()``, and through one ``POST /events`` (the baseline)."""
    task = await client.create_task("SDK latency")
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    subscription: Subscription = client.subscribe(task.id)

    async def follow() -> None:
        async for event in subscription:
            arrived[event.id] = time.perf_counter()

    follower = asyncio.create_task(follow())
    while subscription.last_seq is None:
        await asyncio.sleep(0.01)

    async def wait_for(event_id: str) -> None:
        while event_id not in arrived:
            await asyncio.sleep(0.0005)

    sdk_ms: list[float] = []
    rest_ms: list[float] = []
    async with (
        client.run(task.id, agent="agent_latency") as run,
        httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http,
    ):
        await run.flush()
        for n in range(samples + 20):
            started = time.perf_counter()
            event_id = await run.progress(n / (samples + 20), "measuring")
            sent_at[event_id] = started
            await asyncio.wait_for(wait_for(event_id), 10)
            if n >= 20:  # warm-up
                sdk_ms.append((arrived[event_id] - started) * 1000)
            await asyncio.sleep(0.002 + random.random() * 0.003)

            rest_id = f"evt_rest{n}"
            started = time.perf_counter()
            response = await http.post(
                f"/api/v1/tasks/{task.id}/events", json={"id": rest_id, **EVENT}
            )
            response.raise_for_status()
            await asyncio.wait_for(wait_for(rest_id), 10)
            if n >= 20:
                rest_ms.append((arrived[rest_id] - started) * 1000)
            await asyncio.sleep(0.002 + random.random() * 0.003)
    await subscription.aclose()
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)
    return sdk_ms, rest_ms


async def measure(base: str, pid: int, access: Access, args: argparse.Namespace) -> None:
    options = DeliveryOptions(batch_size=args.batch_size, max_in_flight=args.in_flight)
    headers = access.headers
    token = access.token or ""  # "": send none (not TASKLINE_TOKEN, not a stored token)
    async with AsyncClient(base, timeout=30, delivery=options, token=token) as client:
        await sdk_throughput(client, 2000, pid)  # warm-up
        rounds = [await sdk_throughput(client, args.events, pid) for _ in range(args.rounds)]
        one_each = await rest_throughput(base, headers, args.baseline_events, 1, pid)
        batched = await rest_throughput(base, headers, args.events, 500, pid)
        median = sorted(rounds, key=lambda r: r.per_second)[len(rounds) // 2]
        print(
            f"events acknowledged per second ({args.events} events per round, SQLite, "
            f"batches of up to {args.batch_size}, {args.in_flight} in flight, {access.label}):"
        )
        print(f"  SDK run over one WebSocket (median)        {median}")
        for n, rate in enumerate(rounds, 1):
            print(f"    round {n}                                 {rate}")
        print(f"  POST /events, 1 per request (baseline)     {one_each}")
        print(f"  POST /events, 500 per request (reference)  {batched}")
        print(f"  SDK / baseline: {median.per_second / one_each.per_second:.1f}x")

        sdk_ms, rest_ms = await latency(client, base, headers, args.samples)
        print(f"latency to a WebSocket subscriber ({args.samples} samples each):")
        for name, values in (("run.progress()", sdk_ms), ("POST /events (baseline)", rest_ms)):
            print(
                f"  {name:<24} p50 {statistics.median(values):6.2f} ms"
                f"   p99 {percentile(values, 0.99):6.2f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=DeliveryOptions().batch_size)
    parser.add_argument("--in-flight", type=int, default=DeliveryOptions().max_in_flight)
    add_auth_option(parser, both=False)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="taskline-sdk-bench-"))
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    port = 19000 + random.randrange(1000)
    access = prepare_sync(url, args.auth == "on")
    server = start_server(url, port, access, workdir / "server.log")
    try:
        asyncio.run(measure(f"http://127.0.0.1:{port}", server.pid, access, args))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
