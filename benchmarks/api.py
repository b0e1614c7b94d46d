"""API benchmark: list/get latency over a 10,000-task SQLite board, and task creation rate.

Usage: ``.venv/bin/python benchmarks/api.py [--tasks 10000] [--requests 1000]
[--auth on|off|both]``

The server runs in its own process (pinned to CPU 0 when there are two or more); this client
runs on CPU 1. ``GET /health`` is measured in the same run as the baseline: the cost of one
HTTP round trip through the framework with one trivial query, so the figures can be read as
ratios on a noisy shared machine.

``--auth`` (default ``both``): the server checks who asks (``TASKLINE_AUTH=true``; every
request carries ``Authorization: Bearer`` with an admin token issued in the database before
the server starts), does not (``TASKLINE_AUTH=false``, no header), or both in one run: the
board is seeded once and copied, each copy gets a fresh server (both pinned to CPU 0, one
idle while the other answers), and the two take turns: the same requests (same ids and
offsets) in blocks of 50, the order flipped every block, so that a noisy moment of a shared
machine hits both alike. The report then puts auth-on p50/p99 and creation rates beside the
auth-off ones as ratios (on / off).
"""

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
from sqlalchemy import insert

from taskline.domain.ids import new_id
from taskline.store.database import Database
from taskline.store.tables import SectionRow, SubtaskRow, TagRow, TaskRow

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import Access, add_auth_option, auth_modes, prepare_sync

SECTIONS = 5
SUBTASKS = 4
T = TypeVar("T")


async def seed(url: str, count: int) -> list[str]:
    """Insert ``count`` tasks with 5 sections of 4 subtasks each, in bulk."""
    database = Database(url)
    await database.migrate()
    ids: list[str] = []
    start = datetime.now(UTC) - timedelta(days=30)
    batch = 500
    for first in range(0, count, batch):
        tasks, tags, sections, subtasks = [], [], [], []
        for n in range(first, min(first + batch, count)):
            task_id = new_id("task")
            ids.append(task_id)
            stamp = start + timedelta(seconds=n)
            tasks.append(
                {
                    "id": task_id,
                    "title": f"Benchmark task {n}",
                    "description": "Seeded for the API benchmark.",
                    "status": random.choice(["pending", "in_progress", "completed"]),
                    "priority": random.choice(["low", "medium", "high", "urgent"]),
                    "progress": random.random(),
                    "confidence": random.random(),
                    "assigned_agent_id": None,
                    "result": None,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "started_at": None,
                    "completed_at": None,
                }
            )
            tags.append({"task_id": task_id, "tag": f"group-{n % 20}", "position": 0})
            for s in range(SECTIONS):
                section_id = new_id("sec")
                sections.append(
                    {"id": section_id, "task_id": task_id, "title": f"Phase {s}", "position": s}
                )
                subtasks.extend(
                    {
                        "id": new_id("sub"),
                        "section_id": section_id,
                        "title": f"Step {s}.{k}",
                        "done": k % 2 == 0,
                        "notes": "",
                        "position": k,
                    }
                    for k in range(SUBTASKS)
                )
        async with database.write() as session:
            await session.execute(insert(TaskRow), tasks)
            await session.execute(insert(TagRow), tags)
            await session.execute(insert(SectionRow), sections)
            await session.execute(insert(SubtaskRow), subtasks)
    await database.dispose()
    return ids


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(client: httpx.Client, paths: Sequence[str]) -> list[float]:
    timings = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return timings


def report(name: str, timings: list[float], baseline: list[float] | None) -> None:
    p50, p99 = statistics.median(timings), percentile(timings, 0.99)
    ratio = ""
    if baseline:
        p50_ratio = p50 / statistics.median(baseline)
        p99_ratio = p99 / percentile(baseline, 0.99)
        ratio = f"  ({p50_ratio:.1f}x / {p99_ratio:.1f}x baseline)"
    print(f"{name:<34} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms{ratio}")


async def create_concurrently(
    base: str, headers: dict[str, str], count: int, concurrency: int
) -> float:
    """Seconds ``concurrency`` clients take to create ``count`` tasks of 2 sections."""
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        queue = iter(range(count))

        async def worker() -> None:
            for n in queue:
                response = await client.post(
                    "/api/v1/tasks/",
                    json={
                        "title": f"Created {n}",
                        "sections": [{"title": "S", "subtasks": [{"title": "a"}, {"title": "b"}]}],
                    },
                )
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


#: The request kinds, in the order they are measured and reported.
KINDS = (
    "GET /health (baseline)",
    "GET /tasks/?limit=50",
    "GET /tasks/?limit=50&offset&sort",
    "GET /tasks/{id}",
)
SEQUENTIAL = "POST /tasks/ sequential"
CONCURRENT = "POST /tasks/ 16 concurrent (2 sections)"
#: Requests per turn when servers take turns (so that a noisy moment hits them alike).
BLOCK = 50
WIDTH = 40


@dataclass
class Target:
    """One server (auth on or off) and what it measured."""

    access: Access
    url: str
    log: Path
    port: int = field(default_factory=lambda: 18000 + random.randrange(1000))
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, list[float]] = field(default_factory=dict)
    #: seconds spent creating, and tasks created, per kind of creation
    seconds: dict[str, float] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, created: int) -> None:
        self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds
        self.created[kind] = self.created.get(kind, 0) + created

    def rate(self, kind: str) -> float:
        """Tasks created per second."""
        return self.created[kind] / self.seconds[kind]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, pin: list[str]) -> None:
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    *pin,
                    sys.executable,
                    "-m",
                    "taskline",
                    "serve",
                    "--port",
                    str(self.port),
                    "--database-url",
                    self.url,
                    "--log-level",
                    "warning",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.access.server_environ(),
            )

    def wait_ready(self) -> None:
        assert self.process is not None
        for _ in range(400):
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    self.access.check(self.base)
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def take_turns(
    targets: list[Target], work: Sequence[T], turn: Callable[[Target, Sequence[T]], None]
) -> None:
    """Call ``turn(target, chunk)`` for each chunk of ``work`` and each target in turn (the
    order flipped every chunk), so that both servers see the same moments of a noisy machine."""
    for number, first in enumerate(range(0, len(work), BLOCK)):
        order = targets if number % 2 == 0 else targets[::-1]
        for target in order:
            turn(target, work[first : first + BLOCK])


def measure_all(targets: list[Target], ids: list[str], args: argparse.Namespace) -> None:
    """Every kind of request of each target, the targets taking turns (see take_turns)."""
    rng = random.Random(args.seed)  # the same ids and offsets for every target
    clients = {
        id(t): httpx.Client(base_url=t.base, timeout=30, headers=t.access.headers) for t in targets
    }
    try:
        warm = ["/health", "/api/v1/tasks/?limit=50", f"/api/v1/tasks/{ids[0]}"] * 30
        for target in targets:
            measure(clients[id(target)], warm)
        n = args.requests
        work = {
            KINDS[0]: ["/health"] * n,
            KINDS[1]: ["/api/v1/tasks/?limit=50"] * n,
            KINDS[2]: [
                f"/api/v1/tasks/?limit=50&offset={rng.randrange(9000)}&sort=-priority"
                for _ in range(n // 4)
            ],
            KINDS[3]: [f"/api/v1/tasks/{rng.choice(ids)}" for _ in range(n)],
        }
        for kind, paths in work.items():

            def get(target: Target, chunk: Sequence[str], kind: str = kind) -> None:
                timings = measure(clients[id(target)], chunk)
                target.timings.setdefault(kind, []).extend(timings)

            take_turns(targets, paths, get)

        def create(target: Target, chunk: Sequence[int]) -> None:
            started = time.perf_counter()
            for k in chunk:
                response = clients[id(target)].post("/api/v1/tasks/", json={"title": f"Seq {k}"})
                response.raise_for_status()
            target.add(SEQUENTIAL, time.perf_counter() - started, len(chunk))

        take_turns(targets, range(args.create), create)
    finally:
        for client in clients.values():
            client.close()
    # 16 concurrent creators: in four turns per target (a turn of 50 would be mostly ramp-up).
    quarter = max(1, args.create // 4)
    for number in range(4):
        for target in targets if number % 2 == 0 else targets[::-1]:
            headers = target.access.headers
            elapsed = asyncio.run(create_concurrently(target.base, headers, quarter, 16))
            target.add(CONCURRENT, elapsed, quarter)


def print_figures(target: Target) -> None:
    print(f"--- {target.access.label}")
    baseline = target.timings[KINDS[0]]
    for kind in KINDS:
        report(kind, target.timings[kind], None if kind == KINDS[0] else baseline)
    for kind in (SEQUENTIAL, CONCURRENT):
        print(f"{kind:<{WIDTH}}{target.rate(kind):7.0f} tasks/s")


def print_comparison(on: Target, off: Target) -> None:
    """Auth-on figures beside auth-off ones, as ratios on / off."""
    print()
    print("auth on / auth off (the same requests, the two servers taking turns)")
    print(f"{'':<{WIDTH}}{'p50 on':>8}{'off':>8}{'ratio':>8}   {'p99 on':>8}{'off':>8}{'ratio':>8}")
    for kind in KINDS:
        a, b = on.timings[kind], off.timings[kind]
        p50_on, p50_off = statistics.median(a), statistics.median(b)
        p99_on, p99_off = percentile(a, 0.99), percentile(b, 0.99)
        print(
            f"{kind:<{WIDTH}}{p50_on:8.2f}{p50_off:8.2f}{p50_on / p50_off:7.2f}x   "
            f"{p99_on:8.2f}{p99_off:8.2f}{p99_on / p99_off:7.2f}x"
        )
    print(f"{'tasks/s':<{WIDTH}}{'on':>8}{'off':>8}{'ratio':>8}")
    for kind in (SEQUENTIAL, CONCURRENT):
        rate_on, rate_off = on.rate(kind), off.rate(kind)
        print(f"{kind:<{WIDTH}}{rate_on:8.0f}{rate_off:8.0f}{rate_on / rate_off:7.2f}x")
    print("(a latency ratio above 1.00x, or a rate ratio below: what checking who asks costs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--create", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1, help="of the random ids and offsets")
    add_auth_option(parser)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="taskline-bench-"))
    targets: list[Target] = []
    try:
        seeded = workdir / "seeded.db"
        started = time.perf_counter()
        ids = asyncio.run(seed(f"sqlite+aiosqlite:///{seeded}", args.tasks))
        print(
            f"seeded {len(ids)} tasks x {SECTIONS} sections x {SUBTASKS} subtasks "
            f"in {time.perf_counter() - started:.1f} s"
        )
        for auth in auth_modes(args.auth):
            # Each server gets its own copy of the same board.
            name = f"auth-{'on' if auth else 'off'}"
            copy = workdir / f"{name}.db"
            for suffix in ("", "-wal"):
                if Path(f"{seeded}{suffix}").exists():
                    shutil.copyfile(f"{seeded}{suffix}", f"{copy}{suffix}")
            url = f"sqlite+aiosqlite:///{copy}"
            targets.append(Target(prepare_sync(url, auth), url, workdir / f"{name}.log"))
        pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 else []
        for target in targets:
            target.start(pin)
        if pin:
            os.sched_setaffinity(0, {1})
        for target in targets:
            target.wait_ready()
        measure_all(targets, ids, args)
        for target in targets:
            print_figures(target)
        if len(targets) == 2:
            print_comparison(*targets)
    finally:
        for target in targets:
            target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
