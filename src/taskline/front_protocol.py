"""The protocol a new connection starts with (pass the class as uvicorn's ``http`` option):
its first bytes decide whether it is a WebSocket or HTTP.

uvicorn's own HTTP protocol parses every request, a WebSocket upgrade included, builds its
scope, then writes the request head out again for the WebSocket protocol to parse a second
time. Viewers connect often (every reconnect, every restart of a node at once), so here a
first read that holds a complete WebSocket upgrade head (``GET`` with ``Upgrade: websocket``
and ``Connection: upgrade``, uvicorn's own test) goes straight to
:class:`~taskline.ws_protocol.TasklineWebSocketProtocol`, which checks it (RFC 6455 §4.2.1)
and answers; anything else — HTTP, or a head split over several reads — is handed, bytes
and all, to uvicorn's httptools protocol, exactly as uvicorn would have served it.

**Header timeout.** uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but
only after a first response, and any byte stops that clock: a client that opens connections
and sends nothing, or sends its request head one byte at a time (slowloris), would hold each
one for as long as it likes. Here every connection has ``header_timeout`` seconds to send a
complete request head: from the moment it opens, and again from the end of each response.
The clock does not restart when bytes arrive, and it covers WebSocket upgrades too (a head
that is not whole in the first read goes through the HTTP parser). A connection that runs
out of time is answered ``408 Request Timeout`` if it had started a request, and closed.
Bodies are not timed (the request is the app's from its head on).

**Connections per address.** With ``admit`` (a callable given the peer's host, returning
what to call when that connection is lost, or None to refuse it), a connection the caller
refuses is closed as soon as it is accepted, before anything is read: one client cannot
hold every file descriptor of the process, whatever it sends or does not send. The count
follows the connection through the hand-over (to the WebSocket protocol, or to the HTTP
parser and from there to the WebSocket protocol) until it is lost.

:func:`http_protocol` makes the protocol classes with a timeout and ``admit``.
"""

import asyncio
import email.utils
from collections.abc import Callable
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

#: Given a new connection's peer host: what to call when it is lost, or None to refuse it.
Admit = Callable[[str], Callable[[], None] | None]

__all__ = [
    "Admit",
    "HeadTimedHttpProtocol",
    "TasklineHttpProtocol",
    "http_protocol",
    "is_websocket_upgrade",
]


def is_websocket_upgrade(head: bytes) -> bool:
    """Whether a complete request head asks for a WebSocket (as uvicorn decides it)."""
    if not head.startswith(b"GET "):
        return False
    upgrade = connection = False
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip()
        if name == b"upgrade":
            upgrade = value.strip() == b"websocket"
        elif name == b"connection":
            connection = b"upgrade" in (token.strip() for token in value.split(b","))
    return upgrade and connection


_TIMEOUT_BODY = b"the request head did not arrive in time\n"


def _request_timeout() -> bytes:
    """A ``408 Request Timeout`` response that closes the connection."""
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(_TIMEOUT_BODY)}\r\n\r\n"
    )
    return head.encode("latin-1") + _TIMEOUT_BODY


class HeadTimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the header timeout of the module docstring.

    ``header_timeout`` (a class attribute, see :func:`http_protocol`) is the seconds a request
    head may take; None: no timeout. ``deadline`` (loop time) continues the clock of a
    connection that :class:`TasklineHttpProtocol` handed over.
    """

    header_timeout: float | None = None
    admit: Admit | None = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        deadline: float | None = None,
        handed_over: bool = False,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_deadline = deadline
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        self._handed_over = handed_over  # by TasklineHttpProtocol, which admitted it
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._handed_over and self.admit is not None:
            self._on_lost = self.admit(_peer_host(transport))
            if self._on_lost is None:
                transport.abort()
                return
        if self._head_deadline is not None:
            self._arm_head_timer(self._head_deadline)
        elif self.header_timeout:
            self._arm_head_timer(self.loop.time() + self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        on_lost, self._on_lost = self._on_lost, None
        super().handle_websocket_upgrade()
        if on_lost is not None:
            _hand_over(self.transport.get_protocol(), on_lost)

    def on_message_begin(self) -> None:
        self._head_started = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's head is here already
        super().on_response_complete()
        if self.header_timeout and not pipelined and not self.transport.is_closing():
            self._head_started = False
            self._arm_head_timer(self.loop.time() + self.header_timeout)

    def _arm_head_timer(self, deadline: float) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_at(deadline, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._head_started:
            transport.write(_request_timeout())
        transport.close()


class TasklineHttpProtocol(asyncio.Protocol):
    """Reads a connection's first bytes, then hands the connection over for good.

    Class attributes (see :func:`http_protocol`): ``header_timeout``, seconds until a
    connection that has sent no complete request head is closed (None: never); ``admit``,
    the count of connections per address (None: none).
    """

    __slots__ = (
        "app_state",
        "config",
        "deadline",
        "loop",
        "on_lost",
        "server_state",
        "timer",
        "transport",
    )

    header_timeout: float | None = None
    admit: Admit | None = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.admit is not None:
            self.on_lost = self.admit(_peer_host(self.transport))
            if self.on_lost is None:
                self.transport.abort()  # at once, before reading: the descriptor is free
                return
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        if self.header_timeout:
            self.deadline = self.loop.time() + self.header_timeout
            self.timer = self.loop.call_at(self.deadline, self.shutdown)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._stop_timer()
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

    def shutdown(self) -> None:
        """uvicorn is stopping, or the header timeout passed, and this connection has not
        said anything yet: close it."""
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self.server_state.connections.discard(self)
        self._stop_timer()
        on_lost, self.on_lost = self.on_lost, None  # the next protocol's to call now
        head, found, _ = data.partition(b"\r\n\r\n")
        ws_class = self.config.ws_protocol_class
        if found and ws_class is not None and is_websocket_upgrade(head):
            protocol: asyncio.Protocol = ws_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
            if on_lost is not None:
                _hand_over(protocol, on_lost)
        else:
            http_class = _timed(self.header_timeout, None)  # admitted here already
            protocol = http_class(
                config=self.config,
                server_state=self.server_state,
                app_state=self.app_state,
                _loop=self.loop,
                deadline=self.deadline,
                handed_over=True,
                on_lost=on_lost,
            )
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)


def _peer_host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


def _hand_over(protocol: asyncio.BaseProtocol, on_lost: Callable[[], None]) -> None:
    """Give ``on_lost`` to the protocol taking the connection over: Taskline's WebSocket
    protocol calls its ``on_lost`` when the connection is lost; any other stops counting the
    connection now (it could not say when it ends)."""
    if hasattr(type(protocol), "on_lost"):
        protocol.on_lost = on_lost  # type: ignore[attr-defined]
    else:
        on_lost()


_TIMED: dict[tuple[float | None, Admit | None], type[HeadTimedHttpProtocol]] = {
    (None, None): HeadTimedHttpProtocol
}


def _timed(header_timeout: float | None, admit: Admit | None) -> type[HeadTimedHttpProtocol]:
    """:class:`HeadTimedHttpProtocol` with this timeout and ``admit`` (made once each)."""
    key = (header_timeout or None, admit)
    cls = _TIMED.get(key)
    if cls is None:
        attributes = {"header_timeout": key[0], "admit": staticmethod(admit) if admit else None}
        cls = _TIMED[key] = type("HeadTimedHttpProtocol", (HeadTimedHttpProtocol,), attributes)
    return cls


def http_protocol(
    *, header_timeout: float | None, front: bool = True, admit: Admit | None = None
) -> type[TasklineHttpProtocol] | type[HeadTimedHttpProtocol]:
    """The class to pass as uvicorn's ``http`` option: :class:`TasklineHttpProtocol` (with
    ``front``: upgrades skip the HTTP parser; needs Taskline's WebSocket protocol) or
    :class:`HeadTimedHttpProtocol`, each with ``header_timeout`` seconds (None or 0: none)
    and ``admit`` (None: connections are not counted)."""
    header_timeout = header_timeout or None
    if not front:
        return _timed(header_timeout, admit)
    if header_timeout is None and admit is None:
        return TasklineHttpProtocol
    attributes = {
        "__slots__": (),
        "header_timeout": header_timeout,
        "admit": staticmethod(admit) if admit else None,
    }
    return type("TasklineHttpProtocol", (TasklineHttpProtocol,), attributes)
