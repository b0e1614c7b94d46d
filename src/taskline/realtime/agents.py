"""Connected agents: who is online, and getting people's commands to them.

An agent keeps one WebSocket (``/ws/agents/{agent_id}``, see docs/agent-protocol.md). This
hub tracks those connections, tells its :class:`Presence` when an agent comes and goes (the
application layer records it), queues commands for agents that are away (``queue_size`` per
agent, oldest dropped), and sends each command as one frame. It reads and writes nothing.

With a :class:`~taskline.bus.agent_relay.AgentRelay` (several processes sharing Redis), a
command for an agent connected to another process goes to that process, which sends it; one
for an agent connected nowhere waits in the agent's queue in Redis, for whichever process it
connects to next. Presence is then also kept in Redis with a time to live: an agent leaving
one process while connected to another stays online, and the agents of a process that died
go offline within the relay's ``presence_ttl`` (the hub's watchdog refreshes its own agents'
keys and, one process at a time, marks offline those whose key expired). When Redis fails,
the hub does what one process does alone (it logs, queues in memory, keeps the registry).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from taskline.bus.agent_relay import AgentRelay
from taskline.domain.errors import StorageError
from taskline.domain.ids import new_id
from taskline.domain.models import utc_now

__all__ = ["AgentConnection", "AgentHub", "Presence"]

logger = logging.getLogger("taskline.agents")

Sender = Callable[[str], Awaitable[None]]
Closer = Callable[[int, str], Awaitable[None]]

REPLACED = 4000


class Presence(Protocol):
    """Who records agents coming and going (the application layer)."""

    async def online(self, agent_id: str, *, name: str | None, kind: str | None) -> None:
        """The agent connected (it may be unknown yet: register it)."""
        ...

    async def offline(self, agent_id: str) -> None:
        """The agent's connection is gone."""
        ...

    async def shown_offline(self, agent_ids: list[str]) -> set[str]:
        """Those of ``agent_ids`` the registry shows offline."""
        ...


@dataclass(slots=True)
class AgentConnection:
    agent_id: str
    send: Sender
    close: Closer
    connected_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AgentHub:
    """Agent connections and their command queues (one server process).

    Args:
        presence: told when an agent connects and when its connection is gone.
        stale_after: an agent that sends nothing for this long is disconnected.
        heartbeat_interval: seconds between the hub's checks (and heartbeats).
        queue_size: commands kept per offline agent.
        relay: commands and presence across processes (None: this process alone).
    """

    def __init__(
        self,
        presence: Presence,
        *,
        stale_after: float = 300.0,
        heartbeat_interval: float = 20.0,
        queue_size: int = 100,
        relay: AgentRelay | None = None,
    ) -> None:
        self.presence = presence
        self.relay = relay
        self.stale_after = stale_after
        self.heartbeat_interval = heartbeat_interval
        self.queue_size = queue_size
        self._connections: dict[str, AgentConnection] = {}
        self._queues: dict[str, deque[str]] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the watchdog (and the relay's listener: raises StorageError without Redis)."""
        if self.relay is not None:
            await self.relay.start(self._deliver_here, self._replaced_elsewhere)
        self._watchdog = asyncio.create_task(self._watch(), name="taskline-agent-watchdog")

    async def stop(self) -> None:
        """Disconnect every agent with 1001 (they reconnect and resend)."""
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for agent_id in list(self._connections):
            await self.disconnect(agent_id, 1001, "server shutting down", mark_offline=False)
        if self.relay is not None:
            await self.relay.close()

    def is_connected(self, agent_id: str) -> bool:
        return agent_id in self._connections

    async def is_connected_anywhere(self, agent_id: str) -> bool:
        """True if the agent is connected to this process or, as the relay's presence in
        Redis says, to another one. Redis unreachable: what this process knows alone."""
        if agent_id in self._connections:
            return True
        if self.relay is None:
            return False
        try:
            return (await self.relay.nodes([agent_id]))[agent_id] is not None
        except StorageError:
            logger.warning("agent %s: presence unknown (Redis unreachable)", agent_id)
            return False

    def current(self, agent_id: str) -> AgentConnection | None:
        """The agent's connection now, if any."""
        return self._connections.get(agent_id)

    def connected(self) -> list[str]:
        return sorted(self._connections)

    # --- connections ------------------------------------------------------------------------

    async def connect(
        self, agent_id: str, send: Sender, close: Closer, *, name: str | None, kind: str | None
    ) -> AgentConnection:
        """Register the agent's connection (registering the agent itself if unknown), mark
        it online (through the presence), send the welcome and any queued commands."""
        old = self._connections.get(agent_id)
        if old is not None:
            await self.disconnect(
                agent_id, REPLACED, "replaced by a new connection", mark_offline=False
            )
        await self.presence.online(agent_id, name=name, kind=kind)
        connection = AgentConnection(agent_id, send, close)
        self._connections[agent_id] = connection
        await self._send(
            connection,
            {
                "type": "welcome",
                "agent_id": agent_id,
                "server_time": utc_now().isoformat(),
                "heartbeat_interval": self.heartbeat_interval,
                "stale_after": self.stale_after,
            },
        )
        for frame in self._queues.pop(agent_id, ()):
            await self._send_text(connection, frame)
        if self.relay is not None:
            await self._claim(agent_id, connection)
        return connection

    async def _claim(self, agent_id: str, connection: AgentConnection) -> None:
        """Record the agent as this process's, close an older connection on another one,
        and send what waited for the agent in Redis."""
        assert self.relay is not None
        try:
            previous = await self.relay.claim(agent_id)
            if previous is not None:
                await self.relay.replace(previous, agent_id)
            waiting = await self.relay.take_queue(agent_id)
        except StorageError:
            logger.warning("agent %s: presence not recorded in Redis", agent_id, exc_info=True)
            return
        for frame in waiting:
            await self._send_text(connection, frame)

    async def disconnect(
        self, agent_id: str, code: int = 1000, reason: str = "", *, mark_offline: bool = True
    ) -> None:
        """Forget the agent's connection, close it, and mark the agent offline."""
        connection = self._connections.pop(agent_id, None)
        if connection is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(code, reason[:120]), timeout=5.0)
        if mark_offline and self.relay is not None:
            # without offline marking (shutdown, replaced) the key stays until its TTL: the
            # agent reconnects to another process meanwhile and keeps its status
            try:
                elsewhere = await self.relay.release(agent_id)
            except StorageError:
                logger.warning("agent %s: presence not removed from Redis", agent_id)
                elsewhere = None
            if elsewhere is not None:
                return  # connected to another process now: still online
        if mark_offline:
            try:
                await self.presence.offline(agent_id)
            except Exception:
                logger.exception("could not mark agent %s offline", agent_id)

    def touch(self, agent_id: str) -> None:
        connection = self._connections.get(agent_id)
        if connection is not None:
            connection.last_seen = time.monotonic()

    async def reply(self, agent_id: str, frame: dict[str, Any]) -> None:
        connection = self._connections.get(agent_id)
        if connection is not None:
            await self._send(connection, frame)

    async def reply_anywhere(self, agent_id: str, frame: dict[str, Any]) -> bool:
        """Send ``frame`` to the agent on whichever process holds its connection (through the
        relay for another one); True if a connection or a process took it. An agent that is
        connected nowhere after all gets it from the shared queue when it connects again."""
        connection = self._connections.get(agent_id)
        if connection is not None:
            await self._send(connection, frame)
            return True
        if self.relay is None:
            return False
        try:
            return await self.relay.send(agent_id, orjson.dumps(frame).decode())
        except StorageError:
            logger.warning("agent %s: frame not sent (Redis unreachable)", agent_id)
            return False

    async def notify(self, agent_id: str, frame: dict[str, Any]) -> bool:
        """Send ``frame`` to the agent if it is connected to this process (never queued:
        for news the agent can also read back, such as a request's outcome); True if sent."""
        connection = self._connections.get(agent_id)
        if connection is None:
            return False
        try:
            await self._send(connection, frame)
        except Exception:
            await self.disconnect(agent_id, 1011, "send failed")
            return False
        return True

    # --- commands ---------------------------------------------------------------------------

    async def send_command(
        self,
        agent_id: str,
        task_id: str,
        command: str,
        *,
        message: dict[str, Any] | None = None,
    ) -> bool:
        """Send ``command`` about ``task_id`` to ``agent_id``; queue it if the agent is away.
        Returns True if a connected agent got it now, False if it was queued."""
        frame: dict[str, Any] = {
            "type": "command",
            "id": new_id("cmd"),
            "command": command,
            "task_id": task_id,
        }
        if message is not None:
            frame["message"] = message
        text = orjson.dumps(frame).decode()
        connection = self._connections.get(agent_id)
        if connection is not None:
            try:
                await self._send_text(connection, text)
                return True
            except Exception:
                await self.disconnect(agent_id, 1011, "send failed")
        if self.relay is not None:
            try:
                return await self.relay.send(agent_id, text)
            except StorageError:
                logger.warning("agent %s: command queued in this process only", agent_id)
        self._queue_here(agent_id, text)
        return False

    def _queue_here(self, agent_id: str, text: str) -> None:
        queue = self._queues.setdefault(agent_id, deque(maxlen=self.queue_size))
        queue.append(text)

    async def _deliver_here(self, agent_id: str, text: str) -> None:
        """Relay: another process sent a command for an agent it saw connected here; send
        it, or queue it where every process finds it when the agent has left meanwhile."""
        connection = self._connections.get(agent_id)
        if connection is not None:
            try:
                await self._send_text(connection, text)
                return
            except Exception:
                await self.disconnect(agent_id, 1011, "send failed")
        assert self.relay is not None
        try:
            await self.relay.enqueue(agent_id, text)
        except StorageError:
            self._queue_here(agent_id, text)

    async def _replaced_elsewhere(self, agent_id: str) -> None:
        """Relay: the agent connected to another process; close its connection here."""
        await self.disconnect(
            agent_id, REPLACED, "replaced by a new connection", mark_offline=False
        )

    # --- internals --------------------------------------------------------------------------

    async def _send(self, connection: AgentConnection, frame: dict[str, Any]) -> None:
        await self._send_text(connection, orjson.dumps(frame).decode())

    async def _send_text(self, connection: AgentConnection, text: str) -> None:
        async with connection.lock:
            await asyncio.wait_for(connection.send(text), timeout=10.0)

    async def _watch(self) -> None:
        period = min(self.heartbeat_interval, self.stale_after / 2)
        if self.relay is not None:
            period = min(period, self.relay.refresh_interval)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for agent_id, connection in list(self._connections.items()):
                if now - connection.last_seen > self.stale_after:
                    await self.disconnect(agent_id, 4408, f"no activity for {self.stale_after:g} s")
            if self.relay is not None:
                try:
                    await self._keep_presence()
                except StorageError as exc:
                    logger.warning("agent presence not kept in Redis: %s", exc)
                except Exception:
                    logger.exception("agent presence: the sweep failed")

    async def _keep_presence(self) -> None:
        """Refresh this process's agents in Redis (closing those another process took over),
        put right the registry of its own agents, and on this process's turn mark offline
        the agents shown online that are connected nowhere (their process died)."""
        assert self.relay is not None
        here = self.connected()
        for agent_id in await self.relay.refresh(here):
            await self.disconnect(
                agent_id, REPLACED, "replaced by a new connection", mark_offline=False
            )
        if here:
            for agent_id in await self.presence.shown_offline(here):
                if self.is_connected(agent_id):
                    # it left another process (marked offline there) as it connected here
                    await self.presence.online(agent_id, name=None, kind=None)
        for agent_id in await self.relay.sweep():
            if not self.is_connected(agent_id):
                logger.info("agent %s: connected nowhere (its process stopped): offline", agent_id)
                await self.presence.offline(agent_id)
