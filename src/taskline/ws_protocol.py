"""Taskline's uvicorn WebSocket protocol: ASGI for the app, plus a direct channel for fan-out.

uvicorn's own WebSocket protocols pass every outgoing frame through the ASGI ``send``
coroutine. This one speaks the same ASGI WebSocket interface (``websocket.connect``,
``receive``, ``disconnect``; ``accept``, ``send``, ``close``) and also offers the connection as
a :class:`~taskline.realtime.channel.DirectChannel` in ``scope["extensions"]``, so the
ConnectionManager writes frames it built once for all subscribers straight to the socket.
It also keeps little per connection: no queue objects, tasks or events beyond the app's own.

The opening handshake (RFC 6455 §4.2) is checked and answered here; frames, pings and the
closing handshake are the job of the ``websockets`` library's sans-I/O
:class:`~websockets.server.ServerProtocol`, started in the open state. (Letting it parse the
handshake too would keep the request's objects alive in its parser for the connection's life.)

Edges:
- A handshake that is not a valid WebSocket upgrade gets 400 (426 for another protocol
  version) with the reason, and the app is not called. Extensions (compression) are never
  negotiated.
- The app closing before accepting sends 403; an app error before accepting sends 500, after
  accepting closes with 1011.
- Client messages the app has not read yet are queued; past ``_RECEIVE_HIGH`` of them the
  socket is not read until the app catches up (a flooding client waits, memory stays bounded)
  or closes the connection (then what follows is read and dropped, up to the client's close).
- After the app sends a close, the client has ``_CLOSE_TIMEOUT`` seconds to answer before the
  TCP connection is dropped; its reason is cut to the 123 bytes a close frame holds. uvicorn's
  shutdown closes open connections with 1012.
- Keepalive pings follow uvicorn's ``ws_ping_interval`` / ``ws_ping_timeout`` (no pong in time:
  closed with 1011).
"""

import asyncio
import base64
import binascii
import email.utils
import logging
import os
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.utils import accept_key

from taskline.realtime.channel import DIRECT_CHANNEL

__all__ = ["TasklineWebSocketProtocol"]

logger = logging.getLogger("uvicorn.error")

_RECEIVE_HIGH = 64  # queued client messages before the socket stops being read
_RECEIVE_LOW = 8  # ... and starts again
_CLOSE_TIMEOUT = 10.0
_MAX_HANDSHAKE = 65_536  # bytes of request head

ASGIMessage = dict[str, Any]


class ClientDisconnected(OSError):
    """Raised by ``send`` once the connection is gone (Starlette turns it into a disconnect)."""


class TasklineWebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection (pass the class as uvicorn's ``ws`` option)."""

    __slots__ = (
        "_close_code",
        "_close_timer",
        "_fragment_text",
        "_fragments",
        "_handshake_buffer",
        "_head_to_send",
        "_inbox",
        "_on_writable",
        "_ping_timer",
        "_pong_timer",
        "_reading_paused",
        "_receiver",
        "_response_head",
        "_writable",
        "_write_waiter",
        "accepted",
        "app",
        "app_state",
        "config",
        "conn",
        "disconnected",
        "loop",
        "on_lost",
        "scope",
        "server_state",
        "transport",
    )

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
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.transport: asyncio.Transport | None = None
        self.conn = ServerProtocol(state=State.OPEN, max_size=config.ws_max_size, logger=logger)
        self.scope: dict[str, Any] | None = None
        self.accepted = False
        self.disconnected = False
        self._handshake_buffer: bytes | None = b""  # None once the request head is read
        self._response_head: list[str] | None = None  # the 101 response, until accepted
        self._head_to_send: bytes | None = None  # the accepted 101, not written yet
        self._inbox: list[ASGIMessage] = []  # a deque costs ~600 bytes even when empty
        self._receiver: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._fragments: list[bytes] | None = None
        self._fragment_text = True
        self._writable = True
        self._write_waiter: asyncio.Future[None] | None = None
        self._on_writable: Callable[[], None] | None = None
        self._close_code = 1006
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        #: Called once when the connection is lost (the front protocol's count of it).
        self.on_lost: Callable[[], None] | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server_state.connections.add(self)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._stop_timers()
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()
        if not self.disconnected:
            self._disconnected(self._close_code)
        _wake(self._write_waiter)

    def data_received(self, data: bytes) -> None:
        if self._handshake_buffer is not None:
            data = self._read_handshake(data)
            if not data:
                return
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        self._flush()
        if self.conn.parser_exc is not None and not self.disconnected:
            # protocol error (e.g. a frame over ws_max_size): websockets queued the close
            close = self.conn.close_sent
            self._disconnected(close.code if close else 1002)
            self._close_transport()

    def eof_received(self) -> bool | None:
        if self._handshake_buffer is None:
            self.conn.receive_eof()
            self._flush()
        return None

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        _wake(self._write_waiter)
        if self._on_writable is not None:
            self._on_writable()

    def shutdown(self) -> None:
        """uvicorn is stopping: close with 1012 (service restart)."""
        self._stop_timers()
        if self.accepted and self.conn.state is State.OPEN:
            self.conn.send_close(1012)
            self._flush()
            self._disconnected(1012)
        self._close_transport()

    # --- DirectChannel ----------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """Open, accepted and below the transport's high-water mark."""
        return self._writable and self.accepted and self.conn.state is State.OPEN

    def write_frames(self, data: bytes) -> None:
        """Write complete frames built by the caller (nothing once closing)."""
        transport = self.transport
        if transport is not None and self.conn.state is State.OPEN and not transport.is_closing():
            self._write(data)

    def set_writable_callback(self, callback: Callable[[], None] | None) -> None:
        self._on_writable = callback

    # --- ASGI -------------------------------------------------------------------------------

    async def receive(self) -> ASGIMessage:
        """The next message for the app; ``websocket.disconnect`` again once closed."""
        while not self._inbox:
            if self.disconnected:
                return {"type": "websocket.disconnect", "code": self._close_code}
            self._receiver = self.loop.create_future()
            try:
                await self._receiver
            finally:
                self._receiver = None
        message = self._inbox.pop(0)
        if self._reading_paused and len(self._inbox) <= _RECEIVE_LOW and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: ASGIMessage) -> None:
        """Handle ``websocket.accept`` / ``send`` / ``close`` from the app."""
        kind = message["type"]
        if not self.accepted:
            if self.disconnected:
                raise ClientDisconnected("the client went away before the handshake ended")
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._reject(403, "")
            else:
                raise RuntimeError(f"expected websocket.accept or websocket.close, got {kind!r}")
            return
        if kind == "websocket.send":
            while not self._writable and not self.disconnected:
                self._write_waiter = self.loop.create_future()
                try:
                    await self._write_waiter
                finally:
                    self._write_waiter = None
            if self.disconnected or self.conn.state is not State.OPEN:
                raise ClientDisconnected("the connection is closed")
            text = message.get("text")
            try:
                if text is not None:
                    self.conn.send_text(text.encode())
                else:
                    self.conn.send_binary(message.get("bytes") or b"")
            except InvalidState:
                raise ClientDisconnected("the connection is closed") from None
            self._flush()
        elif kind == "websocket.close":
            if self.conn.state is State.OPEN:
                code = message.get("code") or 1000
                self.conn.send_close(code, _fit_reason(message.get("reason") or ""))
                self._flush()
                self._disconnected(code)
                self._close_timer = self.loop.call_later(_CLOSE_TIMEOUT, self._close_transport)
                if self._reading_paused and self.transport is not None:
                    # the app reads no more: read on, or the client's answer to the close
                    # would wait behind the frames it sent before (a flood) until the timeout
                    self._reading_paused = False
                    self.transport.resume_reading()
        else:
            raise RuntimeError(f"expected websocket.send or websocket.close, got {kind!r}")

    async def run_asgi(self) -> None:
        """Run the app for this connection; afterwards the connection is closed."""
        assert self.scope is not None
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception:
            logger.exception("Exception in ASGI application")
            if not self.accepted:
                self._reject(500, "Internal Server Error")
            elif self.conn.state is State.OPEN:
                self.conn.send_close(1011, "internal error")
                self._flush()
        if not self.accepted:
            self._reject(500, "the application closed the connection without answering")
        if self.conn.state is State.OPEN:
            self.conn.send_close(1000)
            self._flush()
        if self._close_timer is None:
            self._close_transport()

    # --- internals --------------------------------------------------------------------------

    def _read_handshake(self, data: bytes) -> bytes:
        """Buffer the request head; once complete, answer or start the app.

        Returns what followed the head (frames sent early), to be parsed as frames.
        """
        assert self._handshake_buffer is not None
        buffer = self._handshake_buffer + data
        head, found, rest = buffer.partition(b"\r\n\r\n")
        if not found:
            if len(buffer) > _MAX_HANDSHAKE:
                self._handshake_buffer = None
                self._refuse(400, "the request head is too large")
            else:
                self._handshake_buffer = buffer
            return b""
        self._handshake_buffer = None
        try:
            target, headers, key = _parse_upgrade(head)
        except _BadHandshake as exc:
            self._refuse(exc.status, str(exc), exc.headers)
            return b""
        self._start(target, headers, key)
        return rest

    def _start(self, target: str, headers: list[tuple[bytes, bytes]], key: str) -> None:
        """Build the scope and start the app; the 101 waits for its ``websocket.accept``."""
        transport = self.transport
        assert transport is not None
        path, _, query = target.partition("?")
        subprotocols = [
            token.strip()
            for name, value in headers
            if name == b"sec-websocket-protocol"
            for token in value.decode("latin-1").split(",")
            if token.strip()
        ]
        self._response_head = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}",
        ]
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "wss" if transport.get_extra_info("sslcontext") else "ws",
            "server": _address(transport.get_extra_info("sockname")),
            "client": _address(transport.get_extra_info("peername")),
            "root_path": self.config.root_path,
            "path": self.config.root_path + unquote(path),
            "raw_path": (self.config.root_path + path).encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {DIRECT_CHANNEL: {"channel": self}},
        }
        self._inbox.append({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    def _accept(self, message: ASGIMessage) -> None:
        lines = self._response_head
        assert lines is not None and self.transport is not None
        self._response_head = None
        if message.get("subprotocol"):
            lines.append(f"Sec-WebSocket-Protocol: {message['subprotocol']}")
        extra = [*self.server_state.default_headers, *(message.get("headers") or ())]
        lines.extend(
            f"{name.decode('latin-1')}: {value.decode('latin-1')}" for name, value in extra
        )
        if not self.transport.is_closing():
            # written with the first frames when they follow at once (one write, not two);
            # on its own at the end of this loop iteration otherwise
            self._head_to_send = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            self.loop.call_soon(self._write, b"")
        self.accepted = True
        if self.config.ws_ping_interval:
            self._ping_timer = self.loop.call_later(self.config.ws_ping_interval, self._ping)

    def _reject(self, status: int, text: str) -> None:
        """Answer the handshake with an HTTP error instead of accepting it (app's choice)."""
        if self.accepted or self.transport is None or self.transport.is_closing():
            return
        self.accepted = True  # nothing more may be sent
        self._response_head = None
        self._refuse(status, text)
        self._disconnected(1006)

    def _refuse(self, status: int, text: str, headers: tuple[str, ...] = ()) -> None:
        """Send an HTTP error response and close the connection."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = text.encode()
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            "Connection: close",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            *headers,
        ]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        transport.close()

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode is Opcode.TEXT, bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
                self._fragment_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._deliver(self._fragment_text, data)
        elif opcode is Opcode.PONG and self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
        elif opcode is Opcode.CLOSE:
            received = self.conn.close_rcvd
            if received is None:
                self._disconnected(1005)
            else:
                self._disconnected(received.code, received.reason)
            if self._close_timer is not None:  # the answer to our close: the handshake is done
                self._close_timer.cancel()
                self._close_timer = None

    def _deliver(self, text: bool, data: bytes) -> None:
        if self.disconnected:
            return
        if text:
            try:
                message: ASGIMessage = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self.conn.fail(1007, "invalid UTF-8")
                self._disconnected(1007)
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self._push(message)
        if len(self._inbox) >= _RECEIVE_HIGH and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def _disconnected(self, code: int, reason: str = "") -> None:
        """Tell the app the connection is over (once)."""
        if self.disconnected:
            return
        self.disconnected = True
        self._close_code = code
        self._push({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._on_writable = None

    def _push(self, message: ASGIMessage) -> None:
        self._inbox.append(message)
        _wake(self._receiver)

    def _write(self, data: bytes) -> None:
        """Write ``data`` after the 101 response if that is still to be written."""
        transport = self.transport
        if transport is None:
            return
        head, self._head_to_send = self._head_to_send, None
        if head is not None:
            data = head + data
        if data and not transport.is_closing():
            transport.write(data)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.conn.data_to_send():
            if data:
                self._write(data)
            else:  # end of stream: the server closes TCP once the close handshake is done
                self._close_transport()

    def _close_transport(self) -> None:
        if self._head_to_send is not None:
            self._write(b"")
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _ping(self) -> None:
        self._ping_timer = None
        if self.conn.state is not State.OPEN:
            return
        self.conn.send_ping(os.urandom(4))
        self._flush()
        if self.config.ws_ping_timeout:
            self._pong_timer = self.loop.call_later(self.config.ws_ping_timeout, self._no_pong)
        if self.config.ws_ping_interval:
            self._ping_timer = self.loop.call_later(self.config.ws_ping_interval, self._ping)

    def _no_pong(self) -> None:
        self._pong_timer = None
        if self.conn.state is State.OPEN:
            self.conn.fail(1011, "keepalive ping timeout")
            self._flush()
            self._disconnected(1011)
        self._close_transport()

    def _stop_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = None


def _fit_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes a close frame has room for (RFC 6455 §5.5), at a
    character boundary. Callers cut reasons to 120 characters, which is more than 123 bytes
    when they are not ASCII (a task id from the URL, say): websockets then refused to send
    the close, and the client saw 1000 instead of the code meant (4404 for an unknown task)."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:123].decode("utf-8", "ignore")


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    426: "Upgrade Required",
    500: "Internal Server Error",
}


class _BadHandshake(Exception):
    def __init__(self, status: int, reason: str, headers: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = headers


def _parse_upgrade(head: bytes) -> tuple[str, list[tuple[bytes, bytes]], str]:
    """Check a WebSocket upgrade request head (RFC 6455 §4.2.1).

    Returns the request target, the headers (lower-case names, as ASGI wants them) and the
    client's key. Raises :class:`_BadHandshake` naming what is wrong. One pass over the
    headers: this runs for every connection.
    """
    request_line, *header_lines = head.split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[2].startswith(b"HTTP/1."):
        raise _BadHandshake(400, "a WebSocket handshake is a GET over HTTP/1.1")
    headers: list[tuple[bytes, bytes]] = []
    upgrade = connection = version = b""
    keys: list[bytes] = []
    for line in header_lines:
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if not colon or not name:
            raise _BadHandshake(400, f"malformed header line {line[:60].decode('latin-1')!r}")
        value = value.strip()
        headers.append((name, value))
        if name == b"upgrade":
            upgrade += b"," + value
        elif name == b"connection":
            connection += b"," + value
        elif name == b"sec-websocket-version":
            version += b"," + value
        elif name == b"sec-websocket-key":
            keys.append(value)
    if b"websocket" not in _tokens(upgrade):
        raise _BadHandshake(400, "missing 'Upgrade: websocket'")
    if b"upgrade" not in _tokens(connection):
        raise _BadHandshake(400, "missing 'Connection: Upgrade'")
    if _tokens(version) != {b"13"}:
        raise _BadHandshake(
            426, "only WebSocket version 13 is supported", ("Sec-WebSocket-Version: 13",)
        )
    try:
        valid = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        raise _BadHandshake(400, "missing or invalid Sec-WebSocket-Key")
    return parts[1].decode("latin-1"), headers, keys[0].decode("ascii")


def _tokens(value: bytes) -> set[bytes]:
    """The comma-separated tokens of (joined) header values, lower-cased."""
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None
