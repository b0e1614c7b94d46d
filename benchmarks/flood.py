"""Flood benchmark: ``GET /health`` latency while one client floods the server, limits on vs off.

A server in its own process (``taskline serve``, SQLite in a temporary folder, pinned to CPU 0
when there are two), started with a low open-files limit (``--nofile``, 1,024 by default: the
limit that let one client exhaust the descriptors) as its soft *and* hard limit, so it cannot
raise it. This client (CPU 1) runs three phases against it, one after the other:

- **baseline**: nothing else.
- **connection flood**: one address holds ``--flood`` WebSockets (``/ws/board``) open, each
  slot reconnecting 50 ms after it is closed or refused, as an attacker keeps trying.
- **slowloris**: ``--slowloris`` raw sockets send a request head one byte per second (the
  flood's sockets closed first); closed ones are not reopened, so the phase shows how long
  the server lets them live.

Throughout, a prober at another address (127.0.0.2: the attacker is 127.0.0.1) opens a new
connection every ``--interval`` seconds and sends ``GET /health`` (2 s timeout: counted as
failed), as a load balancer's health check does.
Reported per phase: probes, failures, p50/p99 latency of those answered; for the flood, the
WebSockets held and the refusals (1013) seen; for slowloris, how long its sockets lived.

Both modes run in the same invocation, each on a fresh server:

- ``limits on``: the defaults (connection caps; ``taskline serve`` lowers the WebSocket total
  cap and the per-address connection cap to what the open-files limit holds, keeping half
  of it free of WebSockets and a quarter free of any one address), and the header timeout
  (``--header-timeout``, 10 s by default).
- ``limits off``: ``TASKLINE_LIMITS=false`` and ``TASKLINE_HEADER_TIMEOUT=0``.

Authentication is off (``TASKLINE_AUTH=false``): everyone is anonymous, counted by address.

    .venv/bin/python benchmarks/flood.py            # about 1.5 minutes
    .venv/bin/python benchmarks/flood.py --quick    # shorter phases

Results go to ``benchmarks/results/flood-<UTC time>.json`` (not committed).
"""

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
#: The prober's own address (Linux answers all of 127.0.0.0/8): it is not the attacker.
PROBER = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """``taskline serve`` in a process of its own, with ``nofile`` open files at most."""

    workdir: Path
    env: dict[str, str]
    nofile: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str:
        command = [
            str(Path(sys.executable).parent / "taskline"),
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            f"sqlite+aiosqlite:///{self.workdir / f'flood-{self.port}.db'}",
            "--log-level",
            "error",
        ]
        if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
        nofile = self.nofile

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        log = self.workdir / f"server-{self.port}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**_clean(os.environ), **self.env},
                preexec_fn=limit,  # a plain setrlimit in the child, before it runs anything
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            if health_once(self.port, 1.0) is not None:
                return log.read_text()
            time.sleep(0.05)
        raise TimeoutError("server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _clean(environ: Mapping[str, str]) -> dict[str, str]:
    """This environment without TASKLINE_* variables: each mode says what it runs with."""
    return {name: value for name, value in environ.items() if not name.startswith("TASKLINE_")}


def health_once(port: int, timeout: float, source: str = PROBER) -> float | None:
    """Seconds a ``GET /health`` on a new connection took, or None (refused, timed out)."""
    started = time.perf_counter()
    try:
        with socket.create_connection(
            (HOST, port), timeout=timeout, source_address=(source, 0)
        ) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError:
        return None
    return time.perf_counter() - started if answer.startswith(b"HTTP/1.1 200") else None


def upgrade(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def probe_loop(port: int, interval: float, stop: Any, results: Any) -> None:
    """``GET /health`` on a new connection every ``interval`` s until ``stop`` (in a process
    of its own, so that the flood's client does not delay it)."""
    samples: list[float | None] = []
    while not stop.is_set():
        samples.append(health_once(port, 2.0))
        stop.wait(interval)
    results.put(samples)


class Prober:
    """:func:`probe_loop` in another process, from :meth:`start` to :meth:`stop`."""

    def __init__(self, port: int, interval: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.results: Any = context.Queue()
        self.process = context.Process(
            target=probe_loop, args=(port, interval, self.stop_event, self.results)
        )
        self.process.start()

    async def stop(self) -> list[float | None]:
        self.stop_event.set()
        samples: list[float | None] = await asyncio.to_thread(self.results.get, True, 60)
        await asyncio.to_thread(self.process.join, 10)
        return samples


@dataclass
class FloodCounts:
    open: int = 0
    peak: int = 0
    refused_1013: int = 0
    failed: int = 0


async def flood_slot(port: int, counts: FloodCounts, stop: asyncio.Event) -> None:
    """Hold one WebSocket open; when it is refused or closed, try again 50 ms later."""
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
            writer.write(upgrade("/ws/board"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if not head.startswith(b"HTTP/1.1 101"):
                counts.failed += 1
            else:
                first = await asyncio.wait_for(reader.readexactly(2), 5)
                if first[0] == 0x88:  # closed before any data: a refusal
                    payload = await reader.readexactly(first[1] & 0x7F)
                    if int.from_bytes(payload[:2]) == 1013:
                        counts.refused_1013 += 1
                    else:
                        counts.failed += 1
                else:
                    counts.open += 1
                    counts.peak = max(counts.peak, counts.open)
                    try:
                        while not stop.is_set():
                            if not await reader.read(65536):
                                break
                    finally:
                        counts.open -= 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            counts.failed += 1
        finally:
            if writer is not None:
                writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def slowloris_socket(port: int, lived: list[float], stop: asyncio.Event) -> None:
    """Send a request head one byte per second; record how long the server kept it."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 4000 + b"\r\n\r\n"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
    except (OSError, TimeoutError):
        return
    opened = time.monotonic()
    try:
        for byte in head:
            writer.write(bytes([byte]))
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(reader.read(4096), 1.0)
                if not data:
                    break  # closed by the server
            if stop.is_set():
                return  # still open at the end of the phase: not recorded as closed
    except OSError:
        pass
    finally:
        writer.close()
    lived.append(time.monotonic() - opened)


def summary(samples: list[float | None]) -> dict[str, Any]:
    answered = sorted(s for s in samples if s is not None)
    result: dict[str, Any] = {"probes": len(samples), "failed": len(samples) - len(answered)}
    if answered:
        result["p50_ms"] = round(statistics.median(answered) * 1000, 2)
        result["p99_ms"] = round(
            answered[min(len(answered) - 1, int(len(answered) * 0.99))] * 1000, 2
        )
    return result


async def run_mode(label: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="taskline-flood-"))
    server = Server(
        workdir, {"TASKLINE_AUTH": "false", "TASKLINE_INSECURE": "false", **env}, args.nofile
    )
    startup = await asyncio.to_thread(server.start)
    warnings = [line for line in startup.splitlines() if line.startswith("warning:")]
    result: dict[str, Any] = {"mode": label, "env": env, "server_warnings": warnings}
    try:
        # baseline
        prober = Prober(server.port, args.interval)
        await asyncio.sleep(args.baseline)
        result["baseline"] = summary(await prober.stop())

        # connection flood
        stop = asyncio.Event()
        counts = FloodCounts()
        slots = [
            asyncio.create_task(flood_slot(server.port, counts, stop)) for _ in range(args.flood)
        ]
        await asyncio.sleep(args.ramp)  # let the flood take what it can first
        prober = Prober(server.port, args.interval)
        await asyncio.sleep(args.duration)
        held = counts.open
        flood = summary(await prober.stop())
        stop.set()
        await asyncio.gather(*slots, return_exceptions=True)
        flood.update(
            held=held,
            peak=counts.peak,
            refused_1013=counts.refused_1013,
            failed_connects=counts.failed,
        )
        result["connection_flood"] = flood

        # let the server see the flood's sockets go
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health_once(server.port, 2.0) is None:
            await asyncio.sleep(0.2)

        # slowloris
        stop = asyncio.Event()
        lived: list[float] = []
        sockets = [
            asyncio.create_task(slowloris_socket(server.port, lived, stop))
            for _ in range(args.slowloris)
        ]
        prober = Prober(server.port, args.interval)
        await asyncio.sleep(args.slow_duration)
        slow = summary(await prober.stop())
        stop.set()
        await asyncio.gather(*sockets, return_exceptions=True)
        slow.update(
            sockets=args.slowloris,
            closed_by_server=len(lived),
            open_at_end=args.slowloris - len(lived),
            lived_max_s=round(max(lived), 2) if lived else None,
            lived_p50_s=round(statistics.median(lived), 2) if lived else None,
        )
        result["slowloris"] = slow
    finally:
        server.stop()
        log = (workdir / f"server-{server.port}.log").read_text(errors="replace")
        result["server_emfile_lines"] = log.count("Too many open files")
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def report(results: list[dict[str, Any]]) -> None:
    print(
        f"{'mode':<11} {'phase':<17} {'probes':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8}  notes"
    )
    for result in results:
        for phase in ("baseline", "connection_flood", "slowloris"):
            row = result[phase]
            notes = ""
            if phase == "connection_flood":
                notes = (
                    f"held {row['held']} (peak {row['peak']}), 1013 x{row['refused_1013']}, "
                    f"connects reset or failed {row['failed_connects']}"
                )
            elif phase == "slowloris":
                notes = (
                    f"closed {row['closed_by_server']}/{row['sockets']} (lived p50 "
                    f"{row['lived_p50_s']} s, max {row['lived_max_s']} s)"
                )
            print(
                f"{result['mode']:<11} {phase:<17} {row['probes']:>6} {row['failed']:>6} "
                f"{row.get('p50_ms', '-'):>8} {row.get('p99_ms', '-'):>8}  {notes}"
            )
        for warning in result["server_warnings"]:
            print(f"{'':<11} server: {warning}")
        if result["server_emfile_lines"]:
            print(f"{'':<11} server log: 'Too many open files' x{result['server_emfile_lines']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nofile", type=int, default=1024, help="the server's open-files limit (1024)"
    )
    parser.add_argument("--flood", type=int, default=2000, help="WebSockets the flood holds (2000)")
    parser.add_argument("--slowloris", type=int, default=300, help="slowloris sockets (300)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="with limits on (10)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between probes")
    parser.add_argument("--quick", action="store_true", help="shorter phases")
    args = parser.parse_args()
    args.baseline, args.ramp, args.duration, args.slow_duration = (
        (2.0, 3.0, 4.0, args.header_timeout + 4)
        if args.quick
        else (5.0, 5.0, 10.0, args.header_timeout + 10)
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.flood + args.slowloris + 512
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    modes = [
        (
            "limits on",
            {"TASKLINE_LIMITS": "true", "TASKLINE_HEADER_TIMEOUT": str(args.header_timeout)},
        ),
        ("limits off", {"TASKLINE_LIMITS": "false", "TASKLINE_HEADER_TIMEOUT": "0"}),
    ]
    results = [asyncio.run(run_mode(label, env, args)) for label, env in modes]
    report(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"flood-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
