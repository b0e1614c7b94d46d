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
"""

import asyncio
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["TasklineHttpProtocol", "is_websocket_upgrade"]


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


class TasklineHttpProtocol(asyncio.Protocol):
    """Reads a connection's first bytes, then hands the connection over for good."""

    __slots__ = ("app_state", "config", "loop", "server_state", "transport")

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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server_state.connections.add(self)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)

    def shutdown(self) -> None:
        """uvicorn is stopping and this connection has not said anything yet: close it."""
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self.server_state.connections.discard(self)
        head, found, _ = data.partition(b"\r\n\r\n")
        ws_class = self.config.ws_protocol_class
        if found and ws_class is not None and is_websocket_upgrade(head):
            protocol: asyncio.Protocol = ws_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
        else:
            protocol = HttpToolsProtocol(
                config=self.config,
                server_state=self.server_state,
                app_state=self.app_state,
                _loop=self.loop,
            )
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)
