"""``taskline serve --workers N``: N server processes on one machine sharing one port.

The parent (the supervisor) binds N listening sockets to the address with ``SO_REUSEPORT``
(the kernel spreads new connections over them by a hash of each connection's addresses),
applies the migrations once, and starts N workers: ``python -m taskline.cli.workers FD``,
each handed one socket (its file descriptor) and the settings (one JSON line on its stdin).
A worker is the ordinary server (:func:`~taskline.server.build_server`, the app factory, its
graceful shutdown: WebSockets closed with 1001, streams ended) serving the socket it was
given. uvicorn's own ``workers`` are not used: they run a plain ``uvicorn.Server`` and would
lose that shutdown.

Edges:

* Several processes need a database they can share and a bus between them: PostgreSQL and a
  Redis URL. SQLite (one writer, one file) and a missing Redis URL are refused before
  anything starts (:class:`~taskline.cli.errors.CliError`, exit 2).
* SIGTERM or SIGINT to the supervisor is passed on once to every worker as SIGTERM (each
  drains and ends); a second signal is passed on again (uvicorn then exits at once). The
  workers run in a session of their own, so a terminal's Ctrl+C reaches only the supervisor.
* A worker that ends by itself is reported on stderr; the others go on serving. The
  supervisor exits when none is left: 0 if every worker ended cleanly (0, or killed by the
  SIGTERM/SIGINT it shut down on: uvicorn raises it again after its shutdown), else 1.
* A worker whose stdin reaches end of file (the supervisor is gone, even killed) shuts down.
"""

import signal
import socket
import subprocess
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

from taskline.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from taskline.settings import Settings

__all__ = ["bind_sockets", "check_workers", "run_worker", "supervise"]

_BACKLOG = 8192
#: A worker's clean ends: uvicorn raises the signal it stopped on again once it has shut down.
_CLEAN_ENDS = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


def check_workers(settings: "Settings", workers: int) -> None:
    """Refuse settings that several processes cannot share.

    Raises:
        CliError: SQLite, or PostgreSQL without a Redis URL, with more than one worker (exit 2).
    """
    if workers <= 1:
        return
    if settings.database_url.startswith("sqlite"):
        raise CliError(
            f"--workers {workers} needs PostgreSQL: SQLite has one writer and one file per "
            "machine; serve SQLite with one worker, or set TASKLINE_DATABASE_URL to PostgreSQL",
            ExitCode.USAGE,
        )
    if not settings.redis_url:
        raise CliError(
            f"--workers {workers} needs TASKLINE_REDIS_URL: without Redis the live events of "
            "one worker never reach the viewers of another",
            ExitCode.USAGE,
        )
    if settings.seed_demo:
        raise CliError("--demo runs with one worker (drop --workers or --demo)", ExitCode.USAGE)


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening TCP sockets on ``host:port`` with ``SO_REUSEPORT`` (port 0: a free
    port, the same for all).

    Raises:
        CliError: the address cannot be bound (exit 1); no socket is left open.
    """
    sockets: list[socket.socket] = []
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            address = sock.getsockname()  # port 0 is now the port every socket takes
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets


def supervise(settings: "Settings", workers: int) -> None:
    """Serve with ``workers`` processes until they have all ended (see the module docstring).

    Raises:
        CliError: the address cannot be bound, or a worker did not end cleanly (exit 1).
    """
    import asyncio

    from taskline.cli.config import open_database

    sockets = bind_sockets(settings.host, settings.port, workers)
    port = sockets[0].getsockname()[1]
    try:

        async def migrate() -> None:
            database = open_database(settings.database_url)
            try:
                await database.migrate()
            finally:
                await database.dispose()

        if settings.migrate_on_start:
            asyncio.run(migrate())  # once, before any worker: they would race on it
        line = settings.model_copy(update={"port": port, "migrate_on_start": False})
        payload = line.model_dump_json().encode() + b"\n"
        processes: list[subprocess.Popen[bytes]] = []
        for sock in sockets:
            fd = sock.fileno()
            process = subprocess.Popen(
                [sys.executable, "-m", "taskline.cli.workers", str(fd)],
                stdin=subprocess.PIPE,
                pass_fds=(fd,),
                start_new_session=True,
            )
            assert process.stdin is not None
            process.stdin.write(payload)
            process.stdin.flush()  # kept open: its end tells the worker the supervisor is gone
            processes.append(process)
    finally:
        for sock in sockets:
            sock.close()
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    click.echo(
        f"Taskline: {workers} workers on http://{shown_host}:{port} "
        f"(pids {', '.join(str(p.pid) for p in processes)})"
    )

    def forward(signum: int, frame: FrameType | None) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    for process in processes:
        code = process.wait()
        if code not in _CLEAN_ENDS:
            failed += 1
            click.echo(f"warning: worker {process.pid} exited with status {code}", err=True)
    if failed:
        raise CliError(f"{failed} of {workers} workers did not end cleanly", ExitCode.ERROR)


def run_worker(fd: int) -> None:
    """One worker: serve the listening socket ``fd`` with the settings read from stdin."""
    from taskline.server import build_server, file_descriptor_headroom
    from taskline.settings import Settings

    settings = Settings.model_validate_json(sys.stdin.buffer.readline())
    settings, warnings = file_descriptor_headroom(settings)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    sock = socket.socket(fileno=fd)
    server = build_server(settings)

    def watch_supervisor() -> None:
        sys.stdin.buffer.read()  # returns at end of file: the supervisor is gone
        server.should_exit = True

    threading.Thread(target=watch_supervisor, name="taskline-supervisor", daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    run_worker(int(sys.argv[1]))
