"""Connecting: how fast WebSocket viewers join (and come back), and what an idle one costs.

Raw asyncio sockets (no client library) on CPU 1, the server in its own process on CPU 0:

- **Connect rate.** ``--workers`` clients each open a TCP connection, upgrade to
  ``/ws/tasks/{id}?since=<head>`` (a viewer resuming at the head: nothing to replay), read
  the ``connection_established`` frame and close; beside plain HTTP requests on new
  connections (``GET /`` with ``Connection: close``: no database) and ``GET /health`` (one
  database round trip) in the same run. Ratios against ``GET /``.
- **Idle memory.** A fresh server's resident memory before and after ``--idle`` viewers
  connected in waves of 100, without ``since`` and (another fresh server) with ``since``.
- **Restart storm.** ``--storm`` viewers of ``--storm-tasks`` tasks; the server is stopped
  (they are closed with 1001) and started again on the same database; the moment the new
  server answers, every viewer reconnects with ``since`` at once (retrying every 50 ms if
  refused). Reported: the time from then until every viewer has its
  ``connection_established``. (Viewers are held back while the server is down so that 5,000
  of them retrying does not saturate this client's own core.)

The server checks who asks (``--auth on``, the default): an admin token is issued in each
fresh database before its server starts, and every request and upgrade carries it (``GET /``
and ``GET /health`` too, so the ratios compare like with like); ``--auth off`` runs the
servers with ``TASKLINE_AUTH=false`` and sends no token.

    .venv/bin/python benchmarks/connect.py            # about 2 minutes
    .venv/bin/python benchmarks/connect.py --quick
    .venv/bin/python benchmarks/connect.py --auth off
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
from rawhttp import (
    Server,
    http_request,
    pin_self,
    raise_open_files,
    read_response,
    read_ws_text,
    ws_handshake,
)

#: What every request and upgrade carries (the token, with --auth on); set by main.
HEADERS: dict[str, str] = {}


async def api(port: int, method: str, path: str, body: object = None) -> object:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    writer.write(http_request(method, path, data, close=True, headers=HEADERS))
    status, answer = await read_response(reader)
    writer.close()
    assert status < 300, (status, answer)
    return json.loads(answer) if answer else None


async def open_viewer(
    port: int, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, object]]:
    """Upgrade to ``path`` and read the first frame (``connection_established``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ws_handshake(path, HEADERS))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise ConnectionError(head[:80].decode("latin-1"))
    hello = json.loads(await read_ws_text(reader))
    assert hello["event_type"] == "connection_established", hello
    return reader, writer, hello["data"]


async def rate(port: int, workers: int, seconds: float, one: "object") -> float:
    end = time.monotonic() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < end:
            await one()  # type: ignore[operator]
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(workers)))
    return done / (time.monotonic() - started)


async def connect_rates(server: Server, workers: int, seconds: float) -> dict[str, float]:
    """New connections per second of each kind, and the server's CPU microseconds per one."""
    port = server.port
    task = await api(port, "POST", "/api/v1/tasks/", {"title": "connect benchmark"})
    task_id = task["id"]  # type: ignore[index]
    head = 1  # task_created

    async def http(path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(http_request("GET", path, close=True, headers=HEADERS))
        status, _ = await read_response(reader)
        assert status == 200
        writer.close()

    async def viewer() -> None:
        _, writer, _ = await open_viewer(port, f"/ws/tasks/{task_id}?since={head}")
        writer.close()

    await rate(port, workers, 1.0, viewer)  # warm up
    results: dict[str, float] = {}
    for name, one in (
        ("http_root", lambda: http("/")),
        ("http_health", lambda: http("/health")),
        ("ws_resume_at_head", viewer),
    ):
        cpu, started = server.cpu_seconds(), time.monotonic()
        per_second = await rate(port, workers, seconds, one)
        used = server.cpu_seconds() - cpu
        results[name] = per_second
        results[f"{name}_cpu_us"] = 1e6 * used / (per_second * (time.monotonic() - started))
    return results


async def idle_memory(server: Server, count: int, *, since: bool) -> dict[str, float]:
    task = await api(server.port, "POST", "/api/v1/tasks/", {"title": "idle"})
    path = f"/ws/tasks/{task['id']}" + ("?since=1" if since else "")  # type: ignore[index]
    await asyncio.sleep(0.5)
    before = server.rss_kib()
    viewers = []
    for start in range(0, count, 100):
        viewers += await asyncio.gather(
            *(open_viewer(server.port, path) for _ in range(min(100, count - start)))
        )
    await asyncio.sleep(1.0)  # let the replays (nothing to replay) and their tasks end
    after = server.rss_kib()
    for _, writer, _ in viewers:
        writer.close()
    return {"connections": count, "kib_per_connection": (after - before) / count}


async def storm(server: Server, log: Path, count: int, tasks: int) -> dict[str, float]:
    ids = [
        (await api(server.port, "POST", "/api/v1/tasks/", {"title": f"storm {n}"}))["id"]  # type: ignore[index]
        for n in range(tasks)
    ]
    cursors: dict[int, int] = {}
    viewers = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(
            *(
                open_viewer(server.port, f"/ws/tasks/{ids[n % tasks]}")
                for n in range(start, min(count, start + 100))
            )
        )
        for offset, (_, _, hello) in enumerate(batch):
            cursors[start + offset] = int(hello["last_seq"])  # type: ignore[arg-type]
        viewers += batch
    released = asyncio.Event()
    back: dict[int, float] = {}

    async def come_back(n: int) -> None:
        reader, writer, _ = viewers[n]
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass  # until the server closes us (1001, then EOF)
        writer.close()
        await released.wait()
        path = f"/ws/tasks/{ids[n % tasks]}?since={cursors[n]}"
        while True:
            try:
                _, again, _ = await open_viewer(server.port, path)
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.05)
                continue
            back[n] = time.monotonic()
            viewers[n] = (reader, again, {})
            return

    returning = [asyncio.create_task(come_back(n)) for n in range(count)]
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start, log)
    answered = time.monotonic()
    released.set()
    await asyncio.wait_for(asyncio.gather(*returning), 120)
    for _, writer, _ in viewers:
        writer.close()
    times = sorted(t - answered for t in back.values())
    return {
        "viewers": count,
        "all_live_s": max(0.0, times[-1]),
        "p50_s": max(0.0, times[len(times) // 2]),
        "first_s": times[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--idle", type=int, default=3000)
    parser.add_argument("--storm", type=int, default=5000)
    parser.add_argument("--storm-tasks", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    add_auth_option(parser, both=False)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.idle, args.storm = 3.0, 1000, 1000
    raise_open_files(2 * max(args.idle, args.storm) + 1024)
    pinned = pin_self(1)
    results: dict[str, object] = {"pinned": pinned, "auth": args.auth}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def fresh(name: str) -> Server:
            url = f"sqlite+aiosqlite:///{work / name}.db"
            access = prepare_sync(url, args.auth == "on")
            HEADERS.clear()
            HEADERS.update(access.headers)
            server = Server(url, env=access.server_env)
            server.start(work / f"{name}.log")
            access.check(f"http://127.0.0.1:{server.port}")
            return server

        print(f"auth {args.auth} (every request and upgrade carries the token when on)")
        server = fresh("rates")
        try:
            rates = asyncio.run(connect_rates(server, args.workers, args.seconds))
        finally:
            server.stop()
        results["rates"] = rates
        root = rates["http_root"]
        ws = rates["ws_resume_at_head"]
        print(
            f"new connections/s ({args.workers} at once): GET / {root:,.0f} "
            f"({rates['http_root_cpu_us']:.0f} us of server CPU each), GET /health "
            f"{rates['http_health']:,.0f} ({rates['http_health_cpu_us']:.0f} us), WebSocket "
            f"resume at the head {ws:,.0f} ({rates['ws_resume_at_head_cpu_us']:.0f} us): "
            f"{ws / root:.2f}x GET / by rate, "
            f"{rates['http_root_cpu_us'] / rates['ws_resume_at_head_cpu_us']:.2f}x by CPU",
            flush=True,
        )
        for since in (False, True):
            server = fresh(f"idle-{since}")
            try:
                memory = asyncio.run(idle_memory(server, args.idle, since=since))
            finally:
                server.stop()
            results[f"idle_{'since' if since else 'plain'}"] = memory
            print(
                f"idle memory, {args.idle} viewers {'with' if since else 'without'} since: "
                f"{memory['kib_per_connection']:.1f} KiB each",
                flush=True,
            )
        server = fresh("storm")
        try:
            outcome = asyncio.run(storm(server, work / "storm.log", args.storm, args.storm_tasks))
        finally:
            server.stop()
        results["storm"] = outcome
        print(
            f"restart storm: {args.storm} viewers of {args.storm_tasks} tasks all live again "
            f"{outcome['all_live_s']:.2f} s after the new server answered "
            f"(half of them within {outcome['p50_s']:.2f} s)",
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
