"""MCP benchmark: the round trip of an MCP tool call beside the plain REST call it wraps.

(Not ``benchmarks/mcp.py``: run as a script, that name would shadow the ``mcp`` package.)

Usage: ``.venv/bin/python benchmarks/mcp_calls.py [--requests 1000] [--auth on|off]``

The server runs in its own process (pinned to CPU 0 when there are two or more); this client
runs on CPU 1, with one keep-alive connection for REST and one MCP session (the official
SDK's client, Streamable HTTP, handshake era) on the same task. Two pairs are measured, in
blocks of 50 that take turns (the order flipped every block), so a noisy moment of a shared
machine hits both alike:

- read: ``tools/call get_task`` (``events: 0``) beside ``GET /api/v1/tasks/{id}``;
- write: ``tools/call report_progress`` beside ``POST /api/v1/tasks/{id}/events`` with one
  ``progress_update``.

Each MCP call on a task also logs ``tool_call.start`` and ``tool_call.end`` on it (two more
publishes), which is most of what it costs beyond the REST call. The report gives p50/p99 of
each and the MCP / REST ratios.
"""

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import add_auth_option, prepare_sync
from sdk import start_server

BLOCK = 50


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed(call: Callable[[], Awaitable[None]], into: list[float]) -> None:
    started = time.perf_counter()
    await call()
    into.append((time.perf_counter() - started) * 1000)


async def measure(base: str, headers: dict[str, str], requests: int) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as rest:
        created = await rest.post("/api/v1/tasks/", json={"title": "MCP benchmark"})
        task_id = created.json()["id"]
        await rest.post(
            f"/api/v1/tasks/{task_id}/events",
            json={"event_type": "task_started", "data": {}},
        )
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(f"{base}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            progress = [0.0]

            def next_progress() -> float:
                progress[0] = (progress[0] + 0.001) % 1
                return round(progress[0], 3)

            async def rest_read() -> None:
                (await rest.get(f"/api/v1/tasks/{task_id}")).raise_for_status()

            async def mcp_read() -> None:
                result = await session.call_tool("get_task", {"task_id": task_id, "events": 0})
                assert not result.is_error, result.content

            async def rest_write() -> None:
                event = {"event_type": "progress_update", "data": {"progress": next_progress()}}
                answer = await rest.post(f"/api/v1/tasks/{task_id}/events", json=event)
                answer.raise_for_status()

            async def mcp_write() -> None:
                arguments = {"task_id": task_id, "progress": next_progress()}
                result = await session.call_tool("report_progress", arguments)
                assert not result.is_error, result.content

            pairs = {
                "read  (get_task / GET task)": (mcp_read, rest_read),
                "write (report_progress / POST event)": (mcp_write, rest_write),
            }
            for mcp_call, rest_call in pairs.values():  # warm up
                for _ in range(20):
                    await mcp_call()
                    await rest_call()
            figures: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pairs}
            for block in range(max(1, requests // BLOCK)):
                for name, (mcp_call, rest_call) in pairs.items():
                    mcp_times, rest_times = figures[name]
                    order = [(mcp_call, mcp_times), (rest_call, rest_times)]
                    if block % 2:
                        order.reverse()
                    for call, into in order:
                        for _ in range(BLOCK):
                            await timed(call, into)
    print(f"{requests} calls of each, in blocks of {BLOCK} taking turns\n")
    print(f"{'':38} {'MCP p50':>9} {'p99':>8} {'REST p50':>9} {'p99':>8}   ratio p50  p99")
    for name, (mcp_times, rest_times) in figures.items():
        m50, m99 = statistics.median(mcp_times), percentile(mcp_times, 0.99)
        r50, r99 = statistics.median(rest_times), percentile(rest_times, 0.99)
        print(
            f"{name:38} {m50:7.2f}ms {m99:6.2f}ms {r50:7.2f}ms {r99:6.2f}ms"
            f"   {m50 / r50:5.2f}x {m99 / r99:5.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="calls of each kind")
    add_auth_option(parser, both=False)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="taskline-mcp-bench-"))
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    port = 19000 + random.randrange(1000)
    access = prepare_sync(url, args.auth == "on")
    server = start_server(url, port, access, workdir / "server.log")
    try:
        asyncio.run(measure(f"http://127.0.0.1:{port}", access.headers, args.requests))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
