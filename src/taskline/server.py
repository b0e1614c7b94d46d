"""Running a Taskline app under uvicorn, with a shutdown that closes live streams first.

uvicorn's own shutdown closes WebSockets with 1012 and then waits for open responses to end,
which a Server-Sent Events stream never does. :class:`TasklineServer` first lets the
ConnectionManager close every WebSocket with 1001 (going away) and end every SSE stream, so
clients know to resume elsewhere or later, and shutdown does not hang.
"""

import socket

import uvicorn
from fastapi import FastAPI

from taskline.api.doors import Doors
from taskline.api.ws import WebSocketFastLane
from taskline.app import create_app
from taskline.front_protocol import TasklineHttpProtocol
from taskline.realtime import ConnectionManager
from taskline.service import Services
from taskline.settings import Settings
from taskline.ws_protocol import TasklineWebSocketProtocol

__all__ = ["TasklineServer", "build_server"]


class TasklineServer(uvicorn.Server):
    """A uvicorn server that closes Taskline's live connections before its own shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        connections: ConnectionManager | None = getattr(self.app.state, "connections", None)
        if connections is not None:
            await connections.stop()
        services: Services | None = getattr(self.app.state, "services", None)
        if services is not None:
            await services.agui.stop()  # the built-in agent's runs end (failed as interrupted)
            # agents are told 1001 and keep their status: a restart is not the agent leaving
            await services.hub.stop()
        await super().shutdown(sockets)


def build_server(settings: Settings, *, fast_lane: bool = True, **config: object) -> TasklineServer:
    """Build the app for ``settings`` and a server for it; ``config`` goes to uvicorn.

    ``fast_lane=False`` (and ``ws="websockets-sansio"`` in ``config``) serve the streams the
    plain way, through the FastAPI routes and uvicorn's own protocol: the fallback path.

    WebSockets are served by :class:`~taskline.ws_protocol.TasklineWebSocketProtocol` (frames
    built once are written to every subscriber directly), and the task and board streams skip
    the HTTP middleware stack (:class:`~taskline.api.ws.WebSocketFastLane`). Compression is
    not offered: compressing every frame for every subscriber separately costs several times
    the fan-out throughput (design.md).
    """
    app = create_app(settings)
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "ws": TasklineWebSocketProtocol,
        "ws_per_message_deflate": False,
        # agents publish batches over WebSocket: allow frames as large as an HTTP body
        "ws_max_size": max(settings.max_body_bytes, settings.ws_max_message_bytes) + 4096,
        # after a restart every viewer reconnects at once: connections the listen queue cannot
        # hold are dropped and retried by the client's kernel a second later (the kernel caps
        # this at net.core.somaxconn)
        "backlog": 8192,
    }
    options.update(config)
    if options["ws"] is TasklineWebSocketProtocol:
        # WebSocket upgrades skip uvicorn's HTTP parser (see taskline.front_protocol)
        options.setdefault("http", TasklineHttpProtocol)
    inner = WebSocketFastLane(app) if fast_lane else app
    services: Services = app.state.services
    served = Doors(inner, settings, services.identity)  # every request is checked first
    return TasklineServer(uvicorn.Config(served, **options), app)  # type: ignore[arg-type]
