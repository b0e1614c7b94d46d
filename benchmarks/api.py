"""API benchmark: list/get latency over a 10,000-task SQLite board, and task creation rate.

Usage: ``.venv/bin/python benchmarks/api.py [--tasks 10000] [--requests 1000]``

The server runs in its own process (pinned to CPU 0 when there are two or more); this client
runs on CPU 1. ``GET /health`` is measured in the same run as the baseline: the cost of one
HTTP round trip through the framework with one trivial query, so the figures can be read as
ratios on a noisy shared machine.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from taskline.domain.ids import new_id
from taskline.store.database import Database
from taskline.store.tables import SectionRow, SubtaskRow, TagRow, TaskRow

SECTIONS = 5
SUBTASKS = 4


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


def measure(client: httpx.Client, paths: list[str]) -> list[float]:
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


async def create_concurrently(base: str, count: int, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
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
        return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--create", type=int, default=1000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="taskline-bench-"))
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    started = time.perf_counter()
    ids = asyncio.run(seed(url, args.tasks))
    print(
        f"seeded {len(ids)} tasks x {SECTIONS} sections x {SUBTASKS} subtasks "
        f"in {time.perf_counter() - started:.1f} s"
    )

    port = 18000 + random.randrange(1000)
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 else []
    server = subprocess.Popen(
        [
            *pin,
            sys.executable,
            "-m",
            "taskline",
            "serve",
            "--port",
            str(port),
            "--database-url",
            url,
            "--log-level",
            "warning",
        ],
    )
    if pin:
        os.sched_setaffinity(0, {1})
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(200):
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            warm = ["/health", "/api/v1/tasks/?limit=50", f"/api/v1/tasks/{ids[0]}"] * 30
            measure(client, warm)
            n = args.requests
            baseline = measure(client, ["/health"] * n)
            listing = measure(client, ["/api/v1/tasks/?limit=50"] * n)
            deep = measure(
                client,
                [
                    f"/api/v1/tasks/?limit=50&offset={random.randrange(9000)}&sort=-priority"
                    for _ in range(n // 4)
                ],
            )
            getting = measure(client, [f"/api/v1/tasks/{random.choice(ids)}" for _ in range(n)])
            report("GET /health (baseline)", baseline, None)
            report("GET /tasks/?limit=50", listing, baseline)
            report("GET /tasks/?limit=50&offset&sort", deep, baseline)
            report("GET /tasks/{id}", getting, baseline)

            started = time.perf_counter()
            for k in range(args.create):
                client.post("/api/v1/tasks/", json={"title": f"Sequential {k}"}).raise_for_status()
            sequential = args.create / (time.perf_counter() - started)
        concurrent = asyncio.run(create_concurrently(base, args.create, 16))
        print(f"POST /tasks/ sequential               {sequential:7.0f} tasks/s")
        print(f"POST /tasks/ 16 concurrent (2 sections) {concurrent:5.0f} tasks/s")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
