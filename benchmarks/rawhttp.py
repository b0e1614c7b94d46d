"""A cheap HTTP/1.1 and WebSocket load client for the benchmarks: raw asyncio streams, no
library between the socket and the bytes, so that the client is not what is measured.

Also starts a Taskline server in its own process, pinned to a CPU when the machine has two.
Requests and upgrades carry the ``headers`` given (``benchmarks/access.py``: the token a
server that checks who asks wants).
"""

import asyncio
import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Server",
    "free_port",
    "http_request",
    "pin_self",
    "raise_open_files",
    "read_response",
    "read_ws_text",
    "run_for",
    "scratch_postgres",
    "ws_handshake",
]


@contextlib.contextmanager
def scratch_postgres(host: str = "127.0.0.1") -> Iterator[str]:
    """A new, empty PostgreSQL database for one benchmark run (dropped afterwards); yields
    its SQLAlchemy URL."""
    import asyncpg

    name = f"taskline_bench_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(host=host, database="postgres", timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{host}:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit towards ``wanted`` (up to the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def pin_self(cpu: int) -> bool:
    """Pin this process to ``cpu`` when the machine has two or more; True if pinned."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(0, {cpu})
    return True


@dataclass
class Server:
    """``taskline serve`` in its own process (pinned to CPU 0 when possible)."""

    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, log: Path, timeout: float = 60.0) -> None:
        taskline = str(Path(sys.executable).parent / "taskline")
        command = [
            taskline,
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--log-level",
            "warning",
        ]
        if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + timeout
        answer = b""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(
                        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                    )
                    answer = sock.recv(100)
                    if answer.startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()  # not left running behind the caller, who never got a started server
        first = answer.split(b"\r\n", 1)[0].decode("latin-1")
        raise TimeoutError(f"server did not start (GET /health: {first or 'no answer'})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    close: bool = False,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one response (Content-Length or chunked bodies); return status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return status, b""


def ws_handshake(path: str, headers: Mapping[str, str] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


async def read_ws_text(reader: asyncio.StreamReader) -> bytes:
    """Read one unmasked server frame's payload (no fragmentation: Taskline never fragments)."""
    first = await reader.readexactly(2)
    size = first[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return await reader.readexactly(size)


async def run_for(
    seconds: float, workers: int, work: Callable[[], Awaitable[None]]
) -> tuple[int, float]:
    """Run ``work`` in a loop on ``workers`` tasks for ``seconds``; return (count, elapsed)."""
    done = 0
    end = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < end:
            await work()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(workers)))
    return done, time.monotonic() - started
