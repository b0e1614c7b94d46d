"""A real uvicorn server running a Taskline app in a background thread, on a free port."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

from fastapi import FastAPI

from taskline.server import TasklineServer, build_server
from taskline.settings import Settings

__all__ = ["LiveServer", "free_port", "serving"]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """Start and stop a real server; ``restart()`` keeps the port and the database."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        nodelay: bool = False,
        **server_options: object,
    ) -> None:
        """``server_options`` go to :func:`build_server` (``fast_lane``, uvicorn options).

        ``nodelay`` makes the listening socket say it is TCP (``IPPROTO_TCP``), as the one
        uvicorn binds itself (``taskline serve``) does: asyncio then sets ``TCP_NODELAY`` on
        every connection. Without it (the default, which the suite's timing grew up with) an
        HTTP response, written in two parts, waits for the client's delayed ACK: about 40 ms
        a request.
        """
        self.settings = settings
        self.port = port or free_port()
        self.nodelay = nodelay
        self.server_options: dict[str, object] = {"ws_ping_interval": None, **server_options}
        self.app: FastAPI | None = None
        self._server: TasklineServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start serving; return once the server accepts connections."""
        protocol = socket.IPPROTO_TCP if self.nodelay else 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        server = build_server(self.settings, log_level="warning", **self.server_options)
        self.app = server.app
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                sock.close()

        self._server = server
        self._thread = threading.Thread(target=run, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if errors or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {errors[:1]}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` has ended the server's thread."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop serving and wait for the thread to end (the port then refuses connections).

        Raises:
            RuntimeError: the server's thread was still running after a forced exit.
        """
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        thread, self._server, self._thread = self._thread, None, None
        if thread.is_alive():
            raise RuntimeError(f"the server on port {self.port} did not stop")

    def restart(self) -> None:
        self.stop()
        self.start()


def serving(settings: Settings) -> Iterator[LiveServer]:
    """A running :class:`LiveServer` with ``settings``, stopped afterwards (for fixtures:
    ``yield from serving(...)``)."""
    server = LiveServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()
