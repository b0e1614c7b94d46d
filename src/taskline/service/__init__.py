"""The application layer: the only way into the log.

Every change — a REST edit, an agent's published events, a command from a person, an import,
an AG-UI run creating a task, the spec's ``EventBus.emit*`` — is one call here, made by an
:class:`~taskline.domain.actors.Actor`: one transaction that applies the domain rules
(:mod:`taskline.domain.effects`), appends the events (recording the actor) and commits, then
one dispatch to the bus. The API parses, calls, and answers; it never writes SQL or touches
the bus. This is also the one place that will decide who may do what.

:class:`Services` holds one of each service; ``create_app`` builds it and puts it on
``app.state.services``.
"""

import os
from collections.abc import Sequence

from taskline.bus import AgentRelay, EventBus, RedisNotifier, RunLock
from taskline.domain.effects import DEFAULT_MAX_STATE_BYTES
from taskline.realtime import ConnectionManager
from taskline.realtime.agents import AgentHub
from taskline.service.agents import AgentService
from taskline.service.agui_gateway import AguiGateway
from taskline.service.agui_ingest import AguiIngest
from taskline.service.agui_watch import AguiWatch
from taskline.service.claims import ClaimService
from taskline.service.events import EventService
from taskline.service.identity import Identity
from taskline.service.requests import RequestService
from taskline.service.steering import Steering
from taskline.service.tasks import TaskService
from taskline.service.transfer import Transfer
from taskline.service.webhooks import WebhookService
from taskline.service.writes import GroupCommit, Writes
from taskline.store.database import Database

__all__ = ["Services"]


class Services:
    """The application layer's services, sharing one database, bus, agent hub and the
    connection manager (which the AG-UI gateway follows tasks with).

    Args:
        keep_last: retention (the newest events kept per task; None keeps all).
        session_ttl: seconds a browser sign-in lasts.
        heartbeat_interval, stale_after, queue_size: the agent hub's (see AgentHub).
        review_roots, review_hidden: what the built-in agent may review (see AguiGateway).
        agent_approve: the built-in agent's steps that wait for a person's approval.
        max_state_bytes: the shared state's size limit (a larger snapshot or patch result
            is refused).
        lease_seconds, lease_max_seconds, lease_sweep_interval: claims' leases (see
            ClaimService).
        request_max_wait, request_sweep_interval: requests' longest wait and expiry sweeper
            (see RequestService).
        webhooks: the outgoing webhooks (None: a WebhookService with its defaults).
        agent_relay: agents' commands and presence across processes (see AgentHub).
        run_lock: one AG-UI run per thread across processes (see AguiGateway).
    """

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        connections: ConnectionManager,
        *,
        keep_last: int | None = None,
        heartbeat_interval: float = 20.0,
        stale_after: float = 300.0,
        queue_size: int = 100,
        session_ttl: float = 14 * 86_400.0,
        review_roots: Sequence[str | os.PathLike[str]] = (),
        review_hidden: bool = False,
        agent_approve: Sequence[str] = (),
        max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
        lease_seconds: float = 300.0,
        lease_max_seconds: float = 3600.0,
        lease_sweep_interval: float = 5.0,
        request_max_wait: float = 30.0,
        request_sweep_interval: float = 5.0,
        webhooks: WebhookService | None = None,
        agent_relay: AgentRelay | None = None,
        run_lock: RunLock | None = None,
        node: str = "node",
    ) -> None:
        #: this process's id in the deployment (the bus's origin; /health names it)
        self.node = node
        self.database = database
        self.bus = bus
        self.identity = Identity(database, session_ttl=session_ttl)
        self.writes = Writes(database, bus, keep_last=keep_last, max_state_bytes=max_state_bytes)
        # SQLite serialises writers: one group at a time; PostgreSQL commits a few in parallel
        self.commits = GroupCommit(
            database,
            bus,
            keep_last=keep_last,
            workers=1 if database.is_sqlite else 4,
            max_state_bytes=max_state_bytes,
        )
        self.tasks = TaskService(database, self.writes)
        self.events = EventService(database, self.commits)
        self.agents = AgentService(database, self.writes)
        self.claims = ClaimService(
            database,
            self.writes,
            lease_seconds=lease_seconds,
            max_lease_seconds=lease_max_seconds,
            sweep_interval=lease_sweep_interval,
        )
        self.requests = RequestService(
            database,
            self.writes,
            max_wait=request_max_wait,
            sweep_interval=request_sweep_interval,
            linked=lambda: bus.link.up,
        )
        bus.add_listener(self.requests.on_committed)  # wakes waiters, in every process
        self.hub = AgentHub(
            self.agents,
            stale_after=stale_after,
            heartbeat_interval=heartbeat_interval,
            queue_size=queue_size,
            relay=agent_relay,
        )
        self.steering = Steering(database, self.writes, self.tasks, self.agents, self.hub)
        bus.add_listener(self.steering.on_committed)  # requests' outcomes to the askers
        self.transfer = Transfer(database, self.writes)
        self.agui = AguiGateway(
            self.tasks,
            self.events,
            self.agents,
            connections,
            self.hub,
            review_roots=review_roots,
            review_hidden=review_hidden,
            requests=self.requests,
            approve=agent_approve,
            run_lock=run_lock,
        )
        self.agui_ingest = AguiIngest(self.events, self.requests)
        self.agui_watch = AguiWatch(database, connections)
        self.webhooks = webhooks or WebhookService(database)

    @property
    def backend(self) -> str:
        """The database's kind (``sqlite`` or ``postgresql``)."""
        return self.database.backend

    async def ping(self) -> None:
        """Ask the database; raises :class:`StorageError` when it does not answer."""
        await self.database.ping()

    def degraded(self) -> list[str]:
        """The accelerators that are down now: ``["redis"]`` while the event channel's, the
        agent relay's or the client relay's Redis subscription is lost (publishing still
        commits to the database; other processes catch up from the log), ``[]`` otherwise
        (and without Redis)."""
        notifier = self.bus.notifier
        down = isinstance(notifier, RedisNotifier) and not notifier.connected
        relay = self.hub.relay
        if relay is not None and not relay.connected:
            down = True
        shared = self.agui.connections.shared  # personal messages' relay
        if shared is not None and not shared.relay.connected:
            down = True
        return ["redis"] if down else []

    async def start(self) -> None:
        """Start the agent hub, the sweepers (leases, requests) and the webhook loops."""
        await self.hub.start()
        await self.claims.start()
        await self.requests.start()
        await self.webhooks.start()

    async def stop(self) -> None:
        """Stop the webhook loops, the sweepers (and end requests' waits) and the built-in
        agent's runs, disconnect agents, then stop taking publishes (queued ones fail)."""
        await self.webhooks.stop()
        await self.requests.stop()
        await self.claims.stop()
        await self.agui.stop()
        await self.steering.stop()
        await self.hub.stop()
        await self.commits.close()
