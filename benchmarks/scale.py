"""Scale-out benchmark: several Taskline processes on one PostgreSQL database and one Redis.

Usage: ``.venv/bin/python benchmarks/scale.py [--quick] [--processes 1,2,3] [--rounds 2]
[--subscribers 1000] [--duration 10] [--latency-subscribers 100] [--latency-rate 100]``

One run (issue 16, "Benchmarks"), everything on 127.0.0.1, so that its figures are ratios:

1. **Throughput with 1, 2 and 3 processes.** For each count N, N fresh ``taskline serve``
   processes (each on its own port) on a scratch PostgreSQL database and Redis (a prefix of
   this run's own), ``--tasks`` tasks, ``--subscribers`` WebSocket subscribers (the Node ``ws``
   client of ``benchmarks/fanout.py``, one Node process per server and task) spread evenly
   over the servers and the tasks (so (N-1)/N of the deliveries cross processes through
   Redis), and ``--publishers`` publishers posting batches of ``--batch`` events as fast as
   they are answered, publisher j to task j mod T on server j mod N (with as many publishers
   as tasks, each task is written by one process), for ``--duration`` seconds. Reported:
   events/s committed (acknowledged by the API), deliveries/s received (delivered / (last
   receipt - first publish)), % delivered, the CPU (``/proc/PID/stat`` utime+stime) used in
   the window by the servers, this database's PostgreSQL backends, the Redis server (shared
   with whatever else uses it), Node and this process, as % of one core, next to how busy the
   machine's cores were and how much of that was other work: where the limit is. Costs that
   do not depend on how much of the machine other work took: server CPU per delivery,
   PostgreSQL CPU per committed event, and the servers' memory grown per subscriber
   connected. Ratios are against 1 process. With ``--rounds 2`` the counts run as 1, 2, 3,
   3, 2, 1 (each figure the mean of its two, both in the JSON), so a noisy moment of the
   shared machine does not land on one count only.
2. **Latency through nginx beside direct, and cross-process beside same-process.** Two fresh
   servers A and B, nginx (``docs/deploy-nginx.conf``, started by ``tests/support/nginx.py``)
   with A as its only upstream, and three groups of ``--latency-subscribers`` subscribers at
   once: straight to A, through nginx to A, straight to B. One publisher posts single events
   to A at ``--latency-rate`` events/s; each carries its send time, so every group measures
   publish (before the POST) -> receipt on one clock: p50/p95/p99. nginx/direct compares the
   first two groups (same server, only nginx between), cross/same compares B with A (A
   delivers from its own publish, B gets the batch through Redis pub/sub).

Nothing is pinned: the processes share the machine's cores as a deployment would. The servers
check who asks (an admin token, ``benchmarks/access.py``) and run with ``TASKLINE_LIMITS=false``.
The database is dropped at the end and this run's Redis keys deleted. Results are printed as
tables and written to ``benchmarks/results/scale-<UTC time>.json``; every child process is
ended when the run ends, also on Ctrl+C or an error.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support

import fanout
from access import Access, prepare
from fanout import (
    CHILDREN,
    NodeSubscribers,
    bench_event,
    core_times,
    core_usage,
    cpu_seconds,
    ensure_node_modules,
    free_port,
    interrupt,
    raise_open_files_limit,
    rss_kb,
    wrapper,
)
from rawhttp import scratch_postgres
from tests.support.nginx import Nginx

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
REDIS_URL = os.environ.get("TASKLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    processes: tuple[int, ...]
    rounds: int
    subscribers: int
    tasks: int
    publishers: int
    batch: int
    duration: float
    grace: float
    latency_subscribers: int
    latency_rate: float
    latency_duration: float
    quick: bool

    @property
    def order(self) -> list[int]:
        """The process counts in the order they run: 1, 2, 3 then 3, 2, 1 (and so on)."""
        order: list[int] = []
        for n in range(self.rounds):
            order += list(self.processes if n % 2 == 0 else reversed(self.processes))
        return order


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 2 minutes (full: about 8)")
    parser.add_argument("--processes", default="1,2,3", help="process counts (1,2,3)")
    parser.add_argument("--rounds", type=int, default=None, help="1, 2, 3 then 3, 2, 1: 2 (1)")
    parser.add_argument("--subscribers", type=int, default=None, help="in all: 1000 (quick 150)")
    parser.add_argument("--tasks", type=int, default=3, help="tasks published to (3)")
    parser.add_argument("--publishers", type=int, default=3, help="concurrent publishers (3)")
    parser.add_argument("--batch", type=int, default=50, help="events per POST (50)")
    parser.add_argument("--duration", type=float, default=None, help="publishing s: 10 (quick 5)")
    parser.add_argument("--grace", type=float, default=None, help="drain s after: 8 (quick 4)")
    parser.add_argument(
        "--latency-subscribers", type=int, default=None, help="per group: 100 (quick 30)"
    )
    parser.add_argument("--latency-rate", type=float, default=100.0, help="events/s (100)")
    parser.add_argument(
        "--latency-duration", type=float, default=None, help="seconds: 20 (quick 8)"
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick

    def pick(value: Any, full: Any, short: Any) -> Any:
        return value if value is not None else (short if quick else full)

    processes = tuple(int(p) for p in args.processes.split(",") if p.strip())
    if not processes or min(processes) < 1:
        parser.error("--processes: counts of 1 or more, comma-separated")
    return Config(
        processes=processes,
        rounds=pick(args.rounds, 2, 1),
        subscribers=pick(args.subscribers, 1000, 150),
        tasks=args.tasks,
        publishers=args.publishers,
        batch=args.batch,
        duration=pick(args.duration, 10.0, 5.0),
        grace=pick(args.grace, 8.0, 4.0),
        latency_subscribers=pick(args.latency_subscribers, 100, 30),
        latency_rate=args.latency_rate,
        latency_duration=pick(args.latency_duration, 20.0, 8.0),
        quick=quick,
    )


def progress(message: str) -> None:
    print(message, flush=True)


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Cluster:
    """Taskline server processes on one database and one Redis prefix (the run's)."""

    database_url: str
    access: Access
    redis_prefix: str
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def environ(self) -> dict[str, str]:
        return {
            **self.access.server_environ(),
            "TASKLINE_REDIS_URL": REDIS_URL,
            "TASKLINE_REDIS_PREFIX": self.redis_prefix,
            "TASKLINE_MIGRATE_ON_START": "false",  # prepare() migrated the database
        }

    async def start(self, count: int, timeout: float = 60.0) -> None:
        """Start ``count`` servers at once; return when every one answers ``/health``."""
        for _ in range(count):
            port = free_port()
            log = self.workdir / f"server-{port}.log"
            command = [
                str(Path(sys.executable).parent / "taskline"),
                "serve",
                "--port",
                str(port),
                "--database-url",
                self.database_url,
                "--log-level",
                "warning",
            ]
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [*wrapper(0, False), *command],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=self.environ(),
                )
            CHILDREN.add(process.pid, "taskline")
            self.processes.append(process)
            self.ports.append(port)
        await asyncio.gather(*(self._ready(n, timeout) for n in range(count)))

    async def _ready(self, index: int, timeout: float) -> None:
        process, port = self.processes[index], self.ports[index]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base(index), timeout=2.0) as client:
            while time.monotonic() < deadline and process.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        tail = (self.workdir / f"server-{port}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"server on port {port} did not start:\n{tail}")

    def base(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            CHILDREN.forget(process.pid)
        self.processes.clear()
        self.ports.clear()


async def create_task(client: httpx.AsyncClient, title: str) -> str:
    response = await client.post("/api/v1/tasks/", json={"title": title})
    response.raise_for_status()
    task_id: str = response.json()["id"]
    return task_id


# --- CPU accounting ---------------------------------------------------------------------------


async def postgres_backends(database_url: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to this run's database (the servers' pools)."""
    import asyncpg

    host, name = database_url.split("//", 1)[1].split("/", 1)
    connection = await asyncpg.connect(host=host.split(":")[0], database="postgres", timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await connection.close()
    return [int(row["pid"]) for row in rows]


async def redis_pid() -> int | None:
    """The Redis server's PID when it runs on this machine (``INFO server``), else None."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    pid = int(info.get("process_id", 0))
    return pid if pid and Path(f"/proc/{pid}/stat").exists() else None


def cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each PID still alive."""
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            seconds[pid] = cpu_seconds(pid)
    return seconds


@dataclass
class CpuWindow:
    """CPU seconds used by groups of processes between :meth:`begin` and :meth:`end`."""

    groups: dict[str, list[int]]
    before: dict[str, dict[int, float]] = field(default_factory=dict)
    cores: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    started: float = 0.0

    def begin(self) -> None:
        self.before = {name: cpu_of(pids) for name, pids in self.groups.items()}
        self.cores = core_times()
        self.started = time.monotonic()

    def end(self, extra: dict[str, list[int]] | None = None) -> dict[str, Any]:
        """% of one core per group over the window, and each core's busy % (all work)."""
        elapsed = time.monotonic() - self.started
        cores = core_usage(self.cores, core_times())
        used: dict[str, float] = {}
        for name, pids in {**self.groups, **(extra or {})}.items():
            after = cpu_of(pids)
            before = self.before.get(name, {})
            used[name] = sum(after[p] - before.get(p, 0.0) for p in after)
        pct = {name: round(100 * s / elapsed, 1) for name, s in used.items()}
        # everything else the cores did meanwhile (other users of this shared machine)
        machine = sum(u["busy_pct"] for u in cores.values())
        pct["others"] = round(max(0.0, machine - sum(pct.values())), 1)
        return {
            "window_s": round(elapsed, 2),
            "cpu_pct": pct,
            "cpu_s": {name: round(s, 2) for name, s in used.items()},
            "cores_busy_pct": {cpu: round(u["busy_pct"], 1) for cpu, u in cores.items()},
        }


# --- subscribers and publishers ---------------------------------------------------------------


def node_config() -> "fanout.Config":
    """The fan-out benchmark's settings as its Node driver reads them: nothing pinned."""
    return dataclasses.replace(fanout.parse_args(["--quick"]), pin=False)


def split(count: int, parts: int) -> list[int]:
    """``count`` in ``parts`` shares as even as can be (the first ones one larger)."""
    return [count // parts + (1 if n < count % parts else 0) for n in range(parts)]


async def open_subscribers(
    urls: list[str], count: int, run: int, deadline: float, workdir: Path, access: Access
) -> list[NodeSubscribers]:
    """``count`` subscribers spread over ``urls`` (one Node process each); once all are live."""
    nodes = []
    for url, share in zip(urls, split(count, len(urls)), strict=True):
        nodes.append(
            await NodeSubscribers.open(url, share, run, deadline, workdir, node_config(), access)
        )
    readies = await asyncio.gather(*(n.expect("ready", 60 + count / 20) for n in nodes))
    failed = sum(r["failed"] for r in readies)
    if failed:
        raise RuntimeError(f"{failed} of {count} subscribers could not connect")
    return nodes


@dataclass
class Published:
    """What the publishers did: events committed (acknowledged) and POSTs that failed."""

    committed: int = 0
    posts: int = 0
    errors: int = 0
    first_error: str | None = None
    acks_ms: list[float] = field(default_factory=list)


async def publish_closed_loop(
    base: str,
    path: str,
    run: int,
    config: Config,
    headers: dict[str, str],
    end: float,
    out: Published,
) -> None:
    """Batches of ``config.batch`` events, the next as soon as the last is answered."""
    async with httpx.AsyncClient(base_url=base, timeout=60.0, headers=headers) as client:
        while time.monotonic() < end:
            sent_ms = time.time() * 1000
            events = [bench_event(run, out.committed + i, sent_ms) for i in range(config.batch)]
            started = time.monotonic()
            try:
                response = await client.post(path, json={"events": events})
            except httpx.HTTPError as exc:
                out.errors += 1
                out.first_error = out.first_error or repr(exc)
                continue
            out.posts += 1
            out.acks_ms.append((time.monotonic() - started) * 1000)
            if response.status_code >= 400:
                out.errors += 1
                out.first_error = out.first_error or f"{response.status_code} {response.text}"
            else:
                out.committed += len(events)


async def delivered(nodes: list[NodeSubscribers]) -> int:
    statuses = await asyncio.gather(*(n.status() for n in nodes))
    return sum(int(s["delivered"]) for s in statuses)


async def drain(nodes: list[NodeSubscribers], expected: int, grace: float) -> int:
    """Wait until every delivery arrived, nothing arrived for 1 s, or ``grace`` passed."""
    end = time.monotonic() + grace
    last, last_change = -1, time.monotonic()
    while True:
        count = await delivered(nodes)
        now = time.monotonic()
        if count >= expected or now >= end:
            return count
        if count != last:
            last, last_change = count, now
        elif now - last_change > 1.0:
            return count
        await asyncio.sleep(0.2)


async def close_all(nodes: list[NodeSubscribers]) -> list[dict[str, Any]]:
    summaries = []
    for node in nodes:
        try:
            summaries.append(await node.stop())
        finally:
            await node.close()
    return summaries


def percentile(samples: list[float], fraction: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- phase 1: throughput with N processes -----------------------------------------------------


async def throughput(
    count: int, run: int, step: str, cluster: Cluster, config: Config, redis: int | None
) -> dict[str, Any]:
    """One process count: connect, publish for ``duration``, drain, measure."""
    progress(f"{step} {count} process(es): starting, {config.subscribers} subscribers ...")
    await cluster.start(count)
    try:
        headers = cluster.access.headers
        async with httpx.AsyncClient(base_url=cluster.base(0), headers=headers) as client:
            tasks = [await create_task(client, f"scale {count}/{t}") for t in range(config.tasks)]
            # every server gets subscribers of every task: (N - 1) / N of the deliveries
            # cross processes through Redis
            pairs = [(port, task) for port in cluster.ports for task in tasks]
            urls = [f"ws://127.0.0.1:{port}/ws/tasks/{task}" for port, task in pairs]
            per_task = dict.fromkeys(tasks, 0)
            for (_, task), share in zip(pairs, split(config.subscribers, len(pairs)), strict=True):
                per_task[task] += share
            deadline = config.duration + config.grace + 300
            rss_before = sum(rss_kb(pid) for pid in cluster.pids())
            nodes = await open_subscribers(
                urls, config.subscribers, run, deadline, cluster.workdir, cluster.access
            )
            rss_growth = sum(rss_kb(pid) for pid in cluster.pids()) - rss_before
            try:
                # warm-up (run 0: the subscribers ignore it), then the measured window
                for task in tasks:
                    warm = {"events": [bench_event(0, 0, time.time() * 1000)]}
                    await client.post(f"/api/v1/tasks/{task}/events", json=warm)
                await asyncio.sleep(0.5)
                for node in nodes:
                    await node.send("start")
                node_pids = [n.process.pid for n in nodes]
                window = CpuWindow(
                    {
                        "servers": cluster.pids(),
                        "postgres": await postgres_backends(cluster.database_url),
                        "redis": [redis] if redis else [],
                        "node": node_pids,
                        "driver": [os.getpid()],
                    }
                )
                window.begin()
                per_server = {str(n): cpu_of([pid]) for n, pid in enumerate(cluster.pids())}
                outs = {task: Published() for task in tasks}
                started_ms = time.time() * 1000
                end = time.monotonic() + config.duration
                publishers = [
                    asyncio.create_task(
                        publish_closed_loop(
                            cluster.base(j % count),
                            f"/api/v1/tasks/{tasks[j % len(tasks)]}/events",
                            run,
                            config,
                            headers,
                            end,
                            outs[tasks[j % len(tasks)]],
                        )
                    )
                    for j in range(config.publishers)
                ]
                while not all(p.done() for p in publishers):
                    await asyncio.wait(publishers, timeout=2.0)
                    left = max(0.0, end - time.monotonic())
                    committed = sum(o.committed for o in outs.values())
                    progress(f"    publishing: {committed:,} events committed ({left:.0f} s left)")
                await asyncio.gather(*publishers)
                published_s = (time.time() * 1000 - started_ms) / 1000
                expected = sum(outs[task].committed * per_task[task] for task in tasks)
                progress(f"    draining: {expected:,} deliveries expected ...")
                await drain(nodes, expected, config.grace)
                backends = await postgres_backends(cluster.database_url)
                cpu = window.end({"postgres": sorted({*window.groups["postgres"], *backends})})
                after = cpu_of(cluster.pids())
                cpu["servers_each_pct"] = [
                    round(
                        100
                        * (after.get(pid, 0.0) - per_server[str(n)].get(pid, 0.0))
                        / cpu["window_s"],
                        1,
                    )
                    for n, pid in enumerate(cluster.pids())
                ]
            finally:
                summaries = await close_all(nodes)
    finally:
        cluster.stop()
    got = sum(int(s["delivered"]) for s in summaries)
    committed = sum(o.committed for o in outs.values())
    acks = [ms for o in outs.values() for ms in o.acks_ms]
    errors = [o.first_error for o in outs.values() if o.first_error]
    last = max((s["last_receipt_ms"] or 0) for s in summaries)
    span_s = (last - started_ms) / 1000 if last else published_s
    result = {
        "processes": count,
        "subscribers": config.subscribers,
        "tasks": config.tasks,
        "publishers": config.publishers,
        "batch": config.batch,
        "published_s": round(published_s, 2),
        "events_committed": committed,
        "events_per_s": round(committed / published_s, 1),
        "post_errors": sum(o.errors for o in outs.values()),
        "first_error": errors[0] if errors else None,
        "post_p50_ms": percentile(acks, 0.5),
        "post_p99_ms": percentile(acks, 0.99),
        "deliveries_expected": expected,
        "delivered": got,
        "delivered_pct": round(100 * got / expected, 1) if expected else None,
        "deliveries_per_s": round(got / span_s, 0) if span_s > 0 else None,
        "out_of_order": sum(int(s["out_of_order"]) for s in summaries),
        "duplicates": sum(int(s["duplicates"]) for s in summaries),
        "closed_by_server": sum(sum(s["closes"].values()) for s in summaries),
        # the servers' resident memory grown by connecting the (idle) subscribers
        "server_rss_kib_per_subscriber": round(rss_growth / config.subscribers, 1),
        "latency_worst_node_ms": {
            q: max((s["latency_ms"][q] or 0) for s in summaries) for q in ("p50", "p99")
        },
        **cpu,
    }
    progress(
        f"    {result['events_per_s']:,.0f} events/s committed, "
        f"{result['deliveries_per_s']:,.0f} deliveries/s, {result['delivered_pct']}% delivered"
    )
    return result


# --- phase 2: latency (nginx / direct, cross-process / same-process) ---------------------------


LATENCY_GROUPS = ("direct_a", "nginx_a", "direct_b")


async def publish_at_rate(
    client: httpx.AsyncClient, path: str, run: int, rate: float, seconds: float
) -> Published:
    """Single-event POSTs, one after another, at ``rate``/s (each stamped when sent)."""
    out = Published()
    start = time.monotonic()
    total = int(rate * seconds)
    for k in range(total):
        wait = start + k / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        event = bench_event(run, k, time.time() * 1000)
        response = await client.post(path, json=event)
        out.posts += 1
        if response.status_code >= 400:
            out.errors += 1
            out.first_error = out.first_error or f"{response.status_code} {response.text}"
        else:
            out.committed += 1
        if k % int(rate * 2) == 0 and k:
            progress(f"    {k:,} of {total:,} events published")
    return out


async def latency(run: int, cluster: Cluster, config: Config) -> dict[str, Any]:
    per = config.latency_subscribers
    progress(f"[latency] 2 processes + nginx: {3 * per} subscribers in 3 groups ...")
    await cluster.start(2)
    nginx: Nginx | None = None
    try:
        nginx = Nginx([f"127.0.0.1:{cluster.ports[0]}"])
        await asyncio.to_thread(nginx.start)
        headers = cluster.access.headers
        async with httpx.AsyncClient(base_url=cluster.base(0), headers=headers) as client:
            task_id = await create_task(client, "scale latency")
            path = f"/api/v1/tasks/{task_id}/events"
            ws = f"/ws/tasks/{task_id}"
            urls = {
                "direct_a": f"ws://127.0.0.1:{cluster.ports[0]}{ws}",
                "nginx_a": f"{nginx.ws_url}{ws}",
                "direct_b": f"ws://127.0.0.1:{cluster.ports[1]}{ws}",
            }
            deadline = config.latency_duration + config.grace + 300
            nodes: list[NodeSubscribers] = []
            for group in LATENCY_GROUPS:
                nodes += await open_subscribers(
                    [urls[group]], per, run, deadline, cluster.workdir, cluster.access
                )
            try:
                await client.post(path, json={"events": [bench_event(0, 0, time.time() * 1000)]})
                await asyncio.sleep(0.5)
                for node in nodes:
                    await node.send("start")
                window = CpuWindow(
                    {"servers": cluster.pids(), "node": [n.process.pid for n in nodes]}
                )
                window.begin()
                out = await publish_at_rate(
                    client, path, run, config.latency_rate, config.latency_duration
                )
                await drain(nodes, out.committed * per * 3, config.grace)
                cpu = window.end()
            finally:
                summaries = await close_all(nodes)
    finally:
        if nginx is not None:
            await asyncio.to_thread(nginx.stop)
        cluster.stop()
    groups = {}
    for group, summary in zip(LATENCY_GROUPS, summaries, strict=True):
        expected = out.committed * per
        groups[group] = {
            "subscribers": per,
            "delivered": summary["delivered"],
            "delivered_pct": round(100 * summary["delivered"] / expected, 1) if expected else None,
            "out_of_order": summary["out_of_order"],
            "duplicates": summary["duplicates"],
            **{q: summary["latency_ms"][q] for q in ("p50", "p95", "p99", "max", "mean")},
        }

    def ratios(over: str, under: str) -> dict[str, float | None]:
        a, b = groups[over], groups[under]
        return {q: round(a[q] / b[q], 2) if a[q] and b[q] else None for q in ("p50", "p95", "p99")}

    return {
        "rate": config.latency_rate,
        "seconds": config.latency_duration,
        "events": out.committed,
        "post_errors": out.errors,
        "groups": groups,
        "nginx_over_direct": ratios("nginx_a", "direct_a"),
        "cross_over_same": ratios("direct_b", "direct_a"),
        **cpu,
    }


# --- the run ----------------------------------------------------------------------------------


def mean_by_count(modes: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per process count: the mean of its rounds' figures (and each core's busy %)."""
    keys = ("events_per_s", "deliveries_per_s", "delivered_pct", "server_rss_kib_per_subscriber")
    merged: dict[int, dict[str, Any]] = {}
    for count in sorted({m["processes"] for m in modes}):
        runs = [m for m in modes if m["processes"] == count]
        row: dict[str, Any] = {
            k: round(statistics.fmean(float(r[k] or 0) for r in runs), 1) for k in keys
        }
        row["cpu_pct"] = {
            name: round(statistics.fmean(r["cpu_pct"][name] for r in runs), 1)
            for name in runs[0]["cpu_pct"]
        }
        row["servers_each_pct"] = [
            round(statistics.fmean(r["servers_each_pct"][n] for r in runs), 1) for n in range(count)
        ]
        row["cores_busy_pct"] = round(
            statistics.fmean(statistics.fmean(r["cores_busy_pct"].values()) for r in runs), 1
        )
        row["server_cpu_us_per_delivery"] = round(
            statistics.fmean(
                1e6 * r["cpu_s"]["servers"] / r["delivered"] if r["delivered"] else 0 for r in runs
            ),
            2,
        )
        row["postgres_cpu_us_per_event"] = round(
            statistics.fmean(
                1e6 * r["cpu_s"]["postgres"] / r["events_committed"] if r["events_committed"] else 0
                for r in runs
            ),
            1,
        )
        merged[count] = row
    base = merged[min(merged)]
    for row in merged.values():
        for key in ("events_per_s", "deliveries_per_s"):
            row[f"{key}_ratio"] = round(row[key] / base[key], 2) if base[key] else None
        cost, base_cost = row["server_cpu_us_per_delivery"], base["server_cpu_us_per_delivery"]
        row["server_cpu_per_delivery_ratio"] = round(cost / base_cost, 2) if base_cost else None
    return merged


def limit_of(row: dict[str, Any]) -> str:
    """Which part used the most CPU, and whether the machine's cores were full."""
    shares = {k: v for k, v in row["cpu_pct"].items() if k != "others"}
    top = max(shares, key=lambda k: shares[k])
    full = "cores full" if row["cores_busy_pct"] >= 90 else "cores not full"
    return f"{top} {shares[top]:.0f}% of ours; {full}"


async def run_all(config: Config, workdir: Path, database_url: str) -> dict[str, Any]:
    started = time.monotonic()
    prefix = f"taskline-bench-scale-{uuid.uuid4().hex[:10]}"
    access = await prepare(database_url, True)
    cluster = Cluster(database_url, access, prefix, workdir)
    redis = await redis_pid()
    try:
        modes = []
        order = config.order
        for n, count in enumerate(order, start=1):
            modes.append(await throughput(count, n, f"[{n}/{len(order)}]", cluster, config, redis))
        measured = await latency(len(order) + 1, cluster, config)
    finally:
        cluster.stop()
        await forget_redis_keys(prefix)
    return {
        "redis_prefix": prefix,
        "redis_pid_seen": redis is not None,
        "throughput_modes": modes,
        "throughput": {str(k): v for k, v in mean_by_count(modes).items()},
        "latency": measured,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


async def forget_redis_keys(prefix: str) -> None:
    """Delete the keys this run's servers left in Redis (presence, queues) under its prefix."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def print_report(results: dict[str, Any]) -> None:
    rows = results["throughput"]
    config = results["config"]
    print(
        f"\nThroughput: {config['tasks']} tasks, {config['subscribers']} subscribers spread over "
        f"the processes, {config['publishers']} publishers x {config['batch']} events per POST"
    )
    print(
        f"{'procs':>5} {'events/s':>9} {'ratio':>6} {'deliv/s':>10} {'ratio':>6} {'deliv%':>7}"
        f" {'srv us/deliv':>12} {'ratio':>6} {'pg us/event':>11} {'KiB/sub':>7}  limit"
    )
    for count, row in rows.items():
        print(
            f"{count:>5} {row['events_per_s']:>9,.0f} {row['events_per_s_ratio']:>5}x"
            f" {row['deliveries_per_s']:>10,.0f} {row['deliveries_per_s_ratio']:>5}x"
            f" {row['delivered_pct']:>6}% {row['server_cpu_us_per_delivery']:>12}"
            f" {row['server_cpu_per_delivery_ratio']:>5}x {row['postgres_cpu_us_per_event']:>11}"
            f" {row['server_rss_kib_per_subscriber']:>7}"
            f"  {limit_of(row)}"
        )
    print(f"\nCPU in the window, % of one core (the machine has {os.cpu_count()} cores)")
    print(
        f"{'procs':>5} {'servers':>8} {'each':>14} {'pg':>5} {'redis':>6} {'node':>5}"
        f" {'driver':>7} {'others':>7} {'cores busy':>11}"
    )
    for count, row in rows.items():
        cpu = row["cpu_pct"]
        each = "/".join(f"{v:.0f}" for v in row["servers_each_pct"])
        print(
            f"{count:>5} {cpu['servers']:>8.0f} {each:>14} {cpu['postgres']:>5.0f}"
            f" {cpu['redis']:>6.0f} {cpu['node']:>5.0f} {cpu['driver']:>7.0f}"
            f" {cpu['others']:>7.0f} {row['cores_busy_pct']:>10.0f}%"
        )
    print(
        "  pg: this database's backends; redis: the whole Redis server (shared); node: the "
        "subscribers; driver: the publishers; others: the rest of the cores' busy time "
        "(other work on this machine)"
    )
    lat = results["latency"]
    print(
        f"\nLatency, publish -> receipt ({lat['rate']:g} single events/s for {lat['seconds']:g} s)"
    )
    print(f"{'group':>28} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'deliv%':>7}")
    names = {
        "direct_a": "A direct (same process)",
        "nginx_a": "A through nginx",
        "direct_b": "B direct (cross-process)",
    }
    for group, row in lat["groups"].items():
        print(
            f"{names[group]:>28} {row['p50']:>8} {row['p95']:>8} {row['p99']:>8}"
            f" {row['delivered_pct']:>6}%"
        )
    for label, key in (
        ("nginx / direct", "nginx_over_direct"),
        ("cross / same", "cross_over_same"),
    ):
        r = lat[key]
        print(f"{label:>28} {r['p50']:>7}x {r['p95']:>7}x {r['p99']:>7}x")


def environment() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=PROJECT_DIR
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "taskline_commit": commit or None,
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        raise SystemExit("scale: nginx is needed (make nginx installs Debian's, as root)")
    raise_open_files_limit(65_536)
    ensure_node_modules()
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="taskline-scale-"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    env = environment()
    try:
        with scratch_postgres() as database_url:
            results = asyncio.run(run_all(config, workdir, database_url))
    except KeyboardInterrupt:
        print("\nscale: interrupted; children ended", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        CHILDREN.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {
        "benchmark": "scale",
        "started_utc": stamp,
        "config": asdict(config),
        "environment": env,
        **results,
    }
    print_report(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    target = RESULTS_DIR / f"scale-{stamp}.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {target.relative_to(PROJECT_DIR)}  (whole run {results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
