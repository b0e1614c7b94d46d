"""Single-event publishing under concurrency, beside ``GET /health`` in the same run.

``N`` concurrent publishers (keep-alive connections of a raw asyncio client pinned to CPU 1;
the server runs in its own process on CPU 0) each POST one ``progress_update`` per request to
``/api/v1/tasks/{id}/events`` and wait for its answer (its seq: a per-event acknowledgement),
for ``--seconds``; the same connections then do the same with ``GET /health``, which makes a
database round trip too. The figure is publishes/s as a ratio of health checks/s.

The server checks who asks (``--auth on``, the default: an admin token is issued in its
database before it starts, and every request, ``GET /health`` included, carries it, so both
sides of the ratio pay for the check); ``--auth off`` runs it with ``TASKLINE_AUTH=false``
and sends no token.

    .venv/bin/python benchmarks/publish.py                 # 32 publishers, one task each
    .venv/bin/python benchmarks/publish.py --same-task     # 32 publishers on one task
    .venv/bin/python benchmarks/publish.py --postgres     # a scratch database on 127.0.0.1
    .venv/bin/python benchmarks/publish.py --auth off     # a server that does not check
"""

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from access import add_auth_option, prepare_sync
from rawhttp import Server, http_request, pin_self, read_response, scratch_postgres


async def create_tasks(port: int, count: int, headers: dict[str, str]) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ids = []
    for n in range(count):
        body = json.dumps({"title": f"publisher {n}"}).encode()
        writer.write(http_request("POST", "/api/v1/tasks/", body, headers=headers))
        status, answer = await read_response(reader)
        assert status == 201, answer
        ids.append(json.loads(answer)["id"])
    writer.close()
    return ids


async def measure(
    port: int, publishers: int, seconds: float, task_ids: list[str], headers: dict[str, str]
) -> dict[str, float]:
    """Health checks/s, then publishes/s, each with ``publishers`` keep-alive connections."""
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(publishers)]
    health = http_request("GET", "/health", headers=headers)
    posts = [
        http_request(
            "POST",
            f"/api/v1/tasks/{task_ids[i % len(task_ids)]}/events",
            b'{"event_type":"progress_update","data":{"progress":0.5}}',
            headers=headers,
        )
        for i in range(publishers)
    ]
    errors = 0

    async def loop(index: int, request: bytes, end: float) -> int:
        nonlocal errors
        reader, writer = streams[index]
        done = 0
        while time.monotonic() < end:
            writer.write(request)
            status, _ = await read_response(reader)
            errors += status != 200
            done += 1
        return done

    async def rate(requests: list[bytes], duration: float) -> float:
        started = time.monotonic()
        end = started + duration
        counts = await asyncio.gather(*(loop(i, requests[i], end) for i in range(publishers)))
        return sum(counts) / (time.monotonic() - started)

    await rate([health] * publishers, 1.0)  # warm up both paths
    await rate(posts, 1.0)
    results = {"health": await rate([health] * publishers, seconds)}
    results["publish"] = await rate(posts, seconds)
    for _, writer in streams:
        writer.close()
    results["errors"] = errors
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--publishers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--same-task", action="store_true", help="every publisher on one task")
    parser.add_argument(
        "--postgres", action="store_true", help="a scratch PostgreSQL database (default SQLite)"
    )
    parser.add_argument("--runs", type=int, default=2, help="repeat and report each run")
    add_auth_option(parser, both=False)
    args = parser.parse_args()
    pinned = pin_self(1)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = (
            stack.enter_context(scratch_postgres())
            if args.postgres
            else f"sqlite+aiosqlite:///{Path(tmp) / 'publish.db'}"
        )
        access = prepare_sync(url, args.auth == "on")
        server = Server(url, env=access.server_env)
        server.start(Path(tmp) / "server.log")
        try:
            access.check(f"http://127.0.0.1:{server.port}")
            count = 1 if args.same_task else args.publishers
            tasks = asyncio.run(create_tasks(server.port, count, access.headers))
            where = "one task" if args.same_task else "one task each"
            client_cpu = ", client on CPU 1" if pinned else ""
            print(
                f"{args.publishers} concurrent clients, {where}, {args.seconds:g} s per measure, "
                f"server on CPU 0{client_cpu}, {access.label}",
                flush=True,
            )
            rows = []
            for run in range(args.runs):
                started = time.monotonic()
                cpu = server.cpu_seconds()
                result = asyncio.run(
                    measure(server.port, args.publishers, args.seconds, tasks, access.headers)
                )
                result["server_cpu_pct"] = (
                    100 * (server.cpu_seconds() - cpu) / (time.monotonic() - started)
                )
                rows.append(result)
                ratio = result["publish"] / result["health"]
                print(
                    f"run {run + 1}: GET /health {result['health']:,.0f}/s  single-event POST "
                    f"{result['publish']:,.0f}/s  ratio {ratio:.2f}x  "
                    f"(errors {result['errors']:.0f}, server CPU {result['server_cpu_pct']:.0f}%)",
                    flush=True,
                )
        finally:
            server.stop()
    summary = {"publishers": args.publishers, "same_task": args.same_task, "auth": args.auth}
    print(json.dumps({**summary, "runs": rows}))


if __name__ == "__main__":
    main()
