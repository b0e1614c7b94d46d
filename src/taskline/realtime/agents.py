"""Connected agents: who is online, and getting people's commands to them.

An agent keeps one WebSocket (``/ws/agents/{agent_id}``, see docs/agent-protocol.md). This
hub tracks those connections, marks agents online/offline, queues commands for agents that
are away (``queue_size`` per agent, oldest dropped), and sends each command as one frame.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select

from taskline.domain.events import EventIn, WebSocketEventType
from taskline.domain.ids import new_id
from taskline.domain.models import AgentCreate, utc_now
from taskline.domain.status import AgentStatus, TaskStatus
from taskline.realtime.ingest import Ingest
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.tables import AgentRow, TaskRow

__all__ = ["AgentConnection", "AgentHub"]

logger = logging.getLogger("taskline.agents")

Sender = Callable[[str], Awaitable[None]]
Closer = Callable[[int, str], Awaitable[None]]

REPLACED = 4000


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
        database: agents and tasks are read and updated here.
        ingest: where agent status changes are logged.
        stale_after: an agent that sends nothing for this long is disconnected.
        heartbeat_interval: seconds between the hub's checks (and heartbeats).
        queue_size: commands kept per offline agent.
    """

    def __init__(
        self,
        database: Database,
        ingest: Ingest,
        *,
        stale_after: float = 300.0,
        heartbeat_interval: float = 20.0,
        queue_size: int = 100,
    ) -> None:
        self.database = database
        self.ingest = ingest
        self.stale_after = stale_after
        self.heartbeat_interval = heartbeat_interval
        self.queue_size = queue_size
        self._connections: dict[str, AgentConnection] = {}
        self._queues: dict[str, deque[str]] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch(), name="taskline-agent-watchdog")

    async def stop(self) -> None:
        """Disconnect every agent with 1001 (they reconnect and resend)."""
        if self._watchdog:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for agent_id in list(self._connections):
            await self.disconnect(agent_id, 1001, "server shutting down", mark_offline=False)

    def is_connected(self, agent_id: str) -> bool:
        return agent_id in self._connections

    def connected(self) -> list[str]:
        return sorted(self._connections)

    # --- connections ------------------------------------------------------------------------

    async def connect(
        self, agent_id: str, send: Sender, close: Closer, *, name: str | None, kind: str | None
    ) -> AgentConnection:
        """Register the agent's connection (registering the agent itself if unknown), mark
        it online, send the welcome and any queued commands."""
        old = self._connections.get(agent_id)
        if old is not None:
            await self.disconnect(
                agent_id, REPLACED, "replaced by a new connection", mark_offline=False
            )
        async with self.database.write() as session:
            store = AgentStore(session)
            row = await session.get(AgentRow, agent_id)
            if row is None:
                await store.create(
                    AgentCreate(id=agent_id, name=name or agent_id, kind=kind or "generic")
                )
                row = await session.get(AgentRow, agent_id)
            assert row is not None
            previous = AgentStatus(row.status)
            online = (
                previous
                if previous in {AgentStatus.WORKING, AgentStatus.PAUSED}
                else (AgentStatus.IDLE)
            )
            current_task = row.current_task_id
            row.last_seen_at = utc_now()
        connection = AgentConnection(agent_id, send, close)
        self._connections[agent_id] = connection
        if previous != online:
            await self._set_status(agent_id, current_task, online, previous)
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
        return connection

    async def disconnect(
        self, agent_id: str, code: int = 1000, reason: str = "", *, mark_offline: bool = True
    ) -> None:
        """Forget the agent's connection, close it, and mark the agent offline."""
        connection = self._connections.pop(agent_id, None)
        if connection is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(code, reason[:120]), timeout=5.0)
        if mark_offline:
            try:
                await self._go_offline(agent_id)
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

    # --- commands ---------------------------------------------------------------------------

    async def send_command(
        self, task_id: str, command: str, *, message: dict[str, Any] | None = None
    ) -> bool:
        """Send ``command`` about ``task_id`` to the task's agent; queue it if the agent is
        away. Returns True if a connected agent got it now, False if it was queued or the task
        has no agent."""
        agent_id = await self._agent_for(task_id)
        if agent_id is None:
            return False
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
        queue = self._queues.setdefault(agent_id, deque(maxlen=self.queue_size))
        queue.append(text)
        return False

    async def _agent_for(self, task_id: str) -> str | None:
        async with self.database.read() as session:
            assigned = await session.scalar(
                select(TaskRow.assigned_agent_id).where(TaskRow.id == task_id)
            )
            if assigned:
                return str(assigned)
            working = await session.scalar(
                select(AgentRow.id).where(AgentRow.current_task_id == task_id).limit(1)
            )
        return str(working) if working else None

    async def next_task(self, agent_id: str) -> str | None:
        """The id of the oldest pending task assigned to ``agent_id``."""
        async with self.database.read() as session:
            found = await session.scalar(
                select(TaskRow.id)
                .where(
                    TaskRow.assigned_agent_id == agent_id,
                    TaskRow.status == TaskStatus.PENDING.value,
                )
                .order_by(TaskRow.created_at, TaskRow.id)
                .limit(1)
            )
        return str(found) if found else None

    # --- internals --------------------------------------------------------------------------

    async def _go_offline(self, agent_id: str) -> None:
        async with self.database.write() as session:
            row = await session.get(AgentRow, agent_id)
            if row is None:
                return
            previous = AgentStatus(row.status)
            current_task = row.current_task_id
            row.last_seen_at = utc_now()
        if previous != AgentStatus.OFFLINE:
            await self._set_status(agent_id, current_task, AgentStatus.OFFLINE, previous)

    async def _set_status(
        self,
        agent_id: str,
        task_id: str | None,
        status: AgentStatus,
        previous: AgentStatus,
    ) -> None:
        """Log the change on the agent's current task (which also updates the agent), or
        just update the agent when it has no task."""
        if task_id is not None:
            async with self.database.read() as session:
                exists = await session.get(TaskRow, task_id) is not None
            if exists:
                event = EventIn(
                    event_type=WebSocketEventType.AGENT_STATUS_CHANGE,
                    data={"agent_id": agent_id, "status": status.value, "previous": previous.value},
                    agent_id=agent_id,
                )
                await self.ingest.publish(task_id, [event], source="hub")
                return
        async with self.database.write() as session:
            await AgentStore(session).patch(agent_id, {"status": status.value})

    async def _send(self, connection: AgentConnection, frame: dict[str, Any]) -> None:
        await self._send_text(connection, orjson.dumps(frame).decode())

    async def _send_text(self, connection: AgentConnection, text: str) -> None:
        async with connection.lock:
            await asyncio.wait_for(connection.send(text), timeout=10.0)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(self.heartbeat_interval, self.stale_after / 2))
            now = time.monotonic()
            for agent_id, connection in list(self._connections.items()):
                if now - connection.last_seen > self.stale_after:
                    await self.disconnect(agent_id, 4408, f"no activity for {self.stale_after:g} s")
