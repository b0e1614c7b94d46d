"""``create_app(settings)``: builds the database handle and wires the routers.

No module-level state: every call returns an independent application, so tests can run
several side by side.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route

from taskline import __version__
from taskline.api import (
    agent_ws,
    agents,
    agui,
    auth,
    claims,
    clients,
    control,
    events,
    exports,
    messages,
    meta,
    requests,
    runs,
    sections,
    status,
    stream,
    tasks,
    webhooks,
    ws,
)
from taskline.api.body_limit import BodySizeLimit
from taskline.api.openapi import install_openapi
from taskline.api.problems import install_problem_handlers
from taskline.bus import (
    AgentRelay,
    ClientRelay,
    EventBus,
    MemoryNotifier,
    Notifier,
    RedisNotifier,
    RedisRates,
    RedisSockets,
    RunLock,
)
from taskline.bus.node_stats import NodeStats
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.domain.ids import new_id
from taskline.mcp import McpServer
from taskline.realtime import ConnectionManager, LogPoller
from taskline.service import Services
from taskline.service.demo import seed_demo_board
from taskline.service.webhooks import DeliveryPolicy, WebhookService
from taskline.settings import Settings
from taskline.store.database import Database
from taskline.web import routes as web_routes

__all__ = ["announce_sign_in_link", "create_app", "sign_in_url"]

logger = logging.getLogger("taskline")


def sign_in_url(settings: Settings, secret: str) -> str:
    """The one-time sign-in link for ``secret`` (on the public URL, else the bind address)."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
    else:
        host = settings.host
        host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        base = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
    return f"{base}/auth/link?token={secret}"


def announce_sign_in_link(settings: Settings, secret: str) -> None:
    """Print the first admin's one-time sign-in link where the person starting it looks."""
    url = sign_in_url(settings, secret)
    logger.warning(
        "\n    Nobody has signed in yet. Open this one-time link to sign in as the admin\n"
        "    (valid 24 hours; set a password with: taskline users passwd admin):\n\n"
        "        %s\n",
        url,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return a Taskline application for ``settings`` (default: from the environment).

    At start-up it applies migrations (unless ``migrate_on_start`` is off) and, with
    ``seed_demo``, fills an empty board with sample tasks. At shutdown it closes the pool.
    """
    settings = settings or Settings()
    database = Database(settings.database_url)
    node = new_id("node")  # this process, among all those of the deployment
    connections = ConnectionManager(
        database,
        heartbeat_interval=settings.heartbeat_interval,
        stale_after=settings.stale_after,
        write_timeout=settings.write_timeout,
        outbox_bytes=settings.outbox_bytes,
        recent_bytes=settings.recent_events_bytes,
        recent_task_bytes=min(settings.recent_events_bytes, 4 * settings.outbox_bytes),
        # retention trims logs without a dispatch: remembered heads could not follow it
        remember_heads=0 if settings.event_retention else 10_000,
        flush_interval=settings.flush_interval,
        offline_queue_size=settings.offline_queue_size,
        offline_queue_ttl=settings.offline_queue_ttl,
        client_relay=(
            ClientRelay(
                settings.redis_url,
                node=node,
                presence_ttl=settings.presence_ttl,
                queue_size=settings.offline_queue_size,
                queue_ttl=settings.offline_queue_ttl,
                prefix=settings.redis_prefix,
            )
            if settings.redis_url
            else None
        ),
    )

    async def persist(task_id: str, batch: list[EventIn]) -> list[WebSocketMessage]:
        # EventBus.emit stores through the application layer, like every other change
        return await services.events.persist(task_id, batch)

    notifier: Notifier = (
        RedisNotifier(settings.redis_url, channel=f"{settings.redis_prefix}:events", origin=node)
        if settings.redis_url
        else MemoryNotifier()
    )
    agent_relay = (
        AgentRelay(
            settings.redis_url,
            node=node,
            presence_ttl=settings.presence_ttl,
            queue_size=settings.offline_queue_size,
            queue_ttl=settings.offline_queue_ttl,
            prefix=settings.redis_prefix,
        )
        if settings.redis_url
        else None
    )
    # this process's figures in Redis for the cluster view of /api/v1/websocket/status
    node_stats = (
        NodeStats(
            settings.redis_url,
            node=node,
            figures=lambda: status.node_figures(connections),
            interval=settings.node_stats_interval,
            prefix=settings.redis_prefix,
        )
        if settings.redis_url
        else None
    )
    # the rate limits and WebSocket caps of every process together (server.py applies them)
    shared_rates = shared_sockets = None
    if settings.redis_url and settings.limits:
        shared_rates = RedisRates(settings.redis_url, prefix=settings.redis_prefix)
        shared_sockets = RedisSockets(
            settings.redis_url,
            node=node,
            ttl=settings.limit_ws_node_ttl,
            prefix=settings.redis_prefix,
        )
    bus = EventBus(persist=persist, notifier=notifier)
    bus.add_listener(connections.on_committed)
    # while Redis is down, other processes' events come from the log (bounded staleness)
    log_poller = (
        LogPoller(database, bus, connections, interval=settings.redis_down_poll)
        if settings.redis_url
        else None
    )
    services = Services(
        database,
        bus,
        connections,
        keep_last=settings.event_retention,
        stale_after=settings.stale_after,
        heartbeat_interval=settings.heartbeat_interval,
        queue_size=settings.offline_queue_size,
        session_ttl=settings.session_ttl,
        review_roots=settings.review_roots,
        review_hidden=settings.review_hidden,
        agent_approve=settings.agent_approve,
        max_state_bytes=settings.max_state_bytes,
        lease_seconds=settings.lease_seconds,
        lease_max_seconds=settings.lease_max_seconds,
        lease_sweep_interval=settings.lease_sweep_interval,
        request_max_wait=settings.request_max_wait,
        request_sweep_interval=settings.request_sweep_interval,
        webhooks=WebhookService(
            database,
            DeliveryPolicy(
                timeout=settings.webhook_timeout,
                max_attempts=settings.webhook_max_attempts,
                backoff_base=settings.webhook_backoff,
                backoff_max=settings.webhook_backoff_max,
                concurrency=settings.webhook_concurrency,
                poll_interval=settings.webhook_poll_interval,
                user_agent=f"Taskline-Webhooks/{__version__}",
            ),
            retention_days=settings.webhook_retention_days,
        ),
        agent_relay=agent_relay,
        # a crashed process's runs free their threads within the same bound as its agents
        run_lock=(
            RunLock(settings.redis_url, ttl=settings.presence_ttl, prefix=settings.redis_prefix)
            if settings.redis_url
            else None
        ),
        node=node,
    )
    bus.add_listener(services.webhooks.on_committed)
    mcp = McpServer(services)
    bus.add_listener(mcp.watch.on_committed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await database.migrate()
        if settings.checks_who_asks:
            link = await services.identity.first_run()
            if link is not None:
                announce_sign_in_link(settings, link)
        if settings.seed_demo:
            created = await seed_demo_board(services.writes)
            if created:
                logger.info("created %d sample tasks", created)
        await bus.start()
        await connections.start()
        if log_poller is not None:
            await log_poller.start()
        await services.start()
        if node_stats is not None:
            await node_stats.start()
        for limits in (shared_rates, shared_sockets):
            if limits is not None:
                await limits.start()  # never waits for Redis: the limits fall back meanwhile
        try:
            async with mcp.run():
                yield
        finally:
            if node_stats is not None:
                await node_stats.close()
            if log_poller is not None:
                await log_poller.stop()
            await services.stop()
            await connections.stop()
            for limits in (shared_sockets, shared_rates):
                if limits is not None:
                    await limits.close()
            await bus.close()
            await database.dispose()

    app = FastAPI(
        title="Taskline",
        version=__version__,
        summary="A self-hosted hub where AI agents and people work on the same tasks, live.",
        lifespan=lifespan,
        # operation ids are the endpoints' names (get_task), which the document's links name
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.bus = bus
    app.state.connections = connections
    app.state.log_poller = log_poller
    app.state.services = services
    app.state.node_stats = node_stats
    app.state.mcp = mcp
    app.state.shared_rates = shared_rates
    app.state.shared_sockets = shared_sockets
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # exports first: its fixed paths (/tasks/export/..., /tasks/import) must win over /{task_id};
    # then events, the busiest route (routes are matched in this order)
    for module in (
        meta,
        auth,
        exports,
        events,
        runs,
        claims,
        requests,
        tasks,
        sections,
        messages,
        agents,
        stream,
        status,
        clients,
        control,
        ws,
        agent_ws,
        agui,
        webhooks,
    ):
        app.include_router(module.router)
    # MCP over Streamable HTTP (POST, the GET stream, DELETE to end a session), behind the doors
    app.router.routes.append(Route("/mcp", endpoint=mcp, methods=["GET", "POST", "DELETE"]))
    app.include_router(web_routes.router)  # the browser UI at /ui/ (GET / serves it to browsers)
    return app
