"""Running a Taskline app under uvicorn, with a shutdown that closes live streams first.

uvicorn's own shutdown closes WebSockets with 1012 and then waits for open responses to end,
which a Server-Sent Events stream never does. :class:`TasklineServer` first stops accepting
(a proxy in front then sends new connections to another node), then lets the
ConnectionManager close every WebSocket with 1001 (going away) and end every SSE stream, so
clients know to resume elsewhere or later, and shutdown does not hang. Requests still in
progress get ``shutdown_timeout`` seconds; then they are cancelled and the process exits.
"""

import resource
import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from taskline.api.doors import Doors
from taskline.api.fallback import Fallback
from taskline.api.limits import ConnectionCaps, Rate
from taskline.api.throttle import (
    SharedRates,
    SharedSockets,
    SocketCaps,
    Throttle,
    connection_counter,
)
from taskline.api.ws import WebSocketFastLane
from taskline.app import create_app
from taskline.front_protocol import http_protocol
from taskline.realtime import ConnectionManager
from taskline.service import Services
from taskline.settings import Settings
from taskline.ws_protocol import TasklineWebSocketProtocol

__all__ = [
    "FD_HEADROOM",
    "TasklineServer",
    "build_server",
    "file_descriptor_headroom",
    "socket_caps",
    "throttled",
]


class TasklineServer(uvicorn.Server):
    """A uvicorn server that closes Taskline's live connections before its own shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # stop accepting first: a client told 1001 reconnects at once, and a proxy must find
        # this port closed (and try the next node) rather than land it here again
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        connections: ConnectionManager | None = getattr(self.app.state, "connections", None)
        if connections is not None:
            await connections.stop()
        services: Services | None = getattr(self.app.state, "services", None)
        if services is not None:
            await services.agui.stop()  # the built-in agent's runs end (failed as interrupted)
            # agents are told 1001 and keep their status: a restart is not the agent leaving
            await services.hub.stop()
            services.requests.end_waits()  # long polls answer now (the request still open)
        await super().shutdown(sockets)


def throttled(
    app: ASGIApp,
    settings: Settings,
    *,
    shared: SharedRates | None = None,
    fallback: Fallback | None = None,
) -> ASGIApp:
    """``app`` behind the rate limits of ``settings`` (if any apply); with ``shared``, the
    buckets of every process (this process's own when it does not answer)."""
    if not settings.limits:
        return app
    publish = writes = None
    if settings.limit_publish_rate:
        publish = Rate("publish", settings.limit_publish_rate, settings.limit_publish_burst)
    if settings.limit_write_rate:
        writes = Rate("write", settings.limit_write_rate, settings.limit_write_burst)
    if publish is None and writes is None:
        return app
    return Throttle(app, publish=publish, writes=writes, shared=shared, fallback=fallback)


def socket_caps(
    settings: Settings,
    *,
    shared: SharedSockets | None = None,
    fallback: Fallback | None = None,
) -> SocketCaps | None:
    """The WebSocket caps of ``settings`` (None: none apply); with ``shared``, counting every
    process's WebSockets (this process's own when it does not answer)."""
    caps = (settings.limit_ws_per_principal, settings.limit_ws_per_ip, settings.limit_ws_total)
    if not settings.limits or not any(caps):
        return None
    return SocketCaps(
        ConnectionCaps(
            per_principal=settings.limit_ws_per_principal,
            per_address=settings.limit_ws_per_ip,
            total=settings.limit_ws_total,
        ),
        shared=shared,
        fallback=fallback,
    )


def build_server(settings: Settings, *, fast_lane: bool = True, **config: object) -> TasklineServer:
    """Build the app for ``settings`` and a server for it; ``config`` goes to uvicorn.

    ``fast_lane=False`` (and ``ws="websockets-sansio"`` in ``config``) serve the streams the
    plain way, through the FastAPI routes and uvicorn's own protocol: the fallback path.

    WebSockets are served by :class:`~taskline.ws_protocol.TasklineWebSocketProtocol` (frames
    built once are written to every subscriber directly), and the task and board streams skip
    the HTTP middleware stack (:class:`~taskline.api.ws.WebSocketFastLane`). Compression is
    not offered: compressing every frame for every subscriber separately costs several times
    the fan-out throughput (design.md). Every request passes :class:`~taskline.api.doors.Doors`
    and then the limits (:class:`~taskline.api.throttle.Throttle`); every connection has
    ``header_timeout`` seconds to send a request head, and each peer address at most
    ``limit_connections_per_ip`` connections (:mod:`taskline.front_protocol`).
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
        "timeout_keep_alive": settings.keep_alive_timeout,
        # after the streams are closed: how long requests in progress may still take
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }
    options.update(config)
    # WebSocket upgrades skip uvicorn's HTTP parser with Taskline's protocol (see
    # taskline.front_protocol); either way request heads have header_timeout seconds
    front = options["ws"] is TasklineWebSocketProtocol
    admit = None
    if settings.limits and settings.limit_connections_per_ip:
        admit = connection_counter(settings.limit_connections_per_ip)
    options.setdefault(
        "http", http_protocol(header_timeout=settings.header_timeout, front=front, admit=admit)
    )
    inner = WebSocketFastLane(app) if fast_lane else app
    services: Services = app.state.services
    # every request is checked first, then counted against its principal's limits
    # with Redis, the limits of every process together; one warning per Redis outage
    fallback = Fallback()
    sockets = socket_caps(settings, shared=app.state.shared_sockets, fallback=fallback)
    limited = throttled(inner, settings, shared=app.state.shared_rates, fallback=fallback)
    served = Doors(limited, settings, services.identity, sockets=sockets)
    return TasklineServer(uvicorn.Config(served, **options), app)  # type: ignore[arg-type]


#: Open files kept for everything but WebSockets (the listening socket, database files and
#: connections, HTTP clients, logs): at most this many, and at most half the limit.
FD_HEADROOM = 1024


def file_descriptor_headroom(
    settings: Settings,
    *,
    getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit,
    setrlimit: Callable[[int, tuple[int, int]], None] = resource.setrlimit,
) -> tuple[Settings, list[str]]:
    """Make the open-files limit (``RLIMIT_NOFILE``) hold what the caps allow.

    Every connection holds a file descriptor. The process needs ``limit_ws_total`` of them
    for WebSockets plus a headroom of :data:`FD_HEADROOM` (at most half the limit) for
    everything else; if the soft limit is lower it is raised toward the hard limit (as far
    as needed; 65,536 when no total cap applies). If it still falls short, the caps are
    lowered: ``limit_ws_total`` so that the headroom stays free of WebSockets, and
    ``limit_connections_per_ip`` so that one address leaves half the headroom to others —
    with one client holding all it may, HTTP (``/health`` too) still gets descriptors.

    Returns the settings to serve with and the warnings to show (none when all is well).
    """
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    capped = settings.limits and settings.limit_ws_total > 0
    wanted = settings.limit_ws_total + FD_HEADROOM if capped else 65_536
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    warnings: list[str] = []
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            warnings.append(
                f"could not raise the open-files limit (RLIMIT_NOFILE) from {soft} to "
                f"{wanted}: {exc}"
            )
        soft = getrlimit(resource.RLIMIT_NOFILE)[0]
    if not settings.limits or soft == resource.RLIM_INFINITY:
        return settings, warnings
    headroom = min(FD_HEADROOM, soft // 2)
    lowered: dict[str, int] = {}
    if capped and soft - headroom < settings.limit_ws_total:
        lowered["limit_ws_total"] = soft - headroom
    per_address = soft - headroom // 2
    if 0 < per_address < settings.limit_connections_per_ip:
        lowered["limit_connections_per_ip"] = per_address
    if not lowered:
        return settings, warnings
    changes = ", ".join(
        f"TASKLINE_{name.upper()} from {getattr(settings, name)} to {value}"
        for name, value in lowered.items()
    )
    warnings.append(
        f"the open-files limit is {soft} (hard limit {hard}): lowered {changes}, so that "
        "HTTP and the database keep descriptors whoever holds the rest; raise the limit "
        "(ulimit -n, LimitNOFILE= in systemd) to serve more connections"
    )
    return settings.model_copy(update=lowered), warnings
