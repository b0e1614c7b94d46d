"""Agents: the registry (list, register, change, delete) and their presence.

Presence is what the agent hub (:class:`~taskline.realtime.agents.AgentHub`) reports when an
agent's connection comes and goes: an unknown agent is registered on its first connection; an
agent that connects becomes ``idle`` (or keeps ``working``/``paused``), one that goes away
``offline``. A status change is logged as ``agent_status_change`` on the agent's current task
(which also updates the agent), or just updates the agent when it has none.
"""

from typing import Any

from taskline.domain.access import Action, require, require_self
from taskline.domain.actors import Actor, Role
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.ids import new_id
from taskline.domain.models import Agent, AgentCreate, utc_now
from taskline.domain.status import AgentStatus
from taskline.service.writes import Writes
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.tables import AgentRow, TaskRow

__all__ = ["AgentService"]

AgentIds = list[str]

#: Statuses an agent keeps when it reconnects (it was in the middle of something).
_KEPT_ON_RECONNECT = frozenset({AgentStatus.WORKING, AgentStatus.PAUSED})


class AgentService:
    """The agent registry and presence (see the module docstring)."""

    def __init__(self, database: Database, writes: Writes) -> None:
        self.database = database
        self.writes = writes

    # --- the registry -----------------------------------------------------------------------

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]:
        async with self.database.read() as session:
            return await AgentStore(session).list(status=status)

    async def get(self, agent_id: str) -> Agent:
        async with self.database.read() as session:
            return await AgentStore(session).get(agent_id)

    async def create(self, body: AgentCreate, *, actor: Actor) -> Agent:
        """Register an agent (an agent's token: only itself, by its id)."""
        if actor.role == Role.AGENT:
            require_self(actor, Action.MANAGE_AGENTS, body.id or "(no id)")
        require(actor, Action.MANAGE_AGENTS)
        async with self.writes.change() as change:
            return await AgentStore(change.session).create(body)

    async def patch(self, agent_id: str, fields: dict[str, Any], *, actor: Actor) -> Agent:
        """Change the agent; a new status is announced to board viewers of every process.

        The announcement is an ``agent_status_change`` outside any task's log (no ``seq``, no
        ``task_id``), sent after the commit through the bus (Redis carries it to the other
        processes); an unchanged status announces nothing.
        """
        require_self(actor, Action.MANAGE_AGENTS, agent_id)
        async with self.writes.change() as change:
            store = AgentStore(change.session)
            previous = (await store.get(agent_id)).status if "status" in fields else None
            agent = await store.patch(agent_id, fields)
        if previous is not None and previous != agent.status:
            await self.writes.bus.announce(
                [
                    WebSocketMessage(
                        id=new_id("evt"),
                        event_type=WebSocketEventType.AGENT_STATUS_CHANGE,
                        data={
                            "agent_id": agent_id,
                            "status": agent.status.value,
                            "previous": previous.value,
                        },
                        timestamp=agent.updated_at,
                        source="api",
                        actor=str(actor),
                        agent_id=agent_id,
                    )
                ]
            )
        return agent

    async def delete(self, agent_id: str, *, actor: Actor) -> None:
        require_self(actor, Action.MANAGE_AGENTS, agent_id)
        async with self.writes.change() as change:
            await AgentStore(change.session).delete(agent_id)

    async def next_task(self, agent_id: str) -> str | None:
        """The oldest pending task assigned to the agent (404 for an unknown agent)."""
        async with self.database.read() as session:
            store = AgentStore(session)
            await store.get(agent_id)
            return await store.next_task(agent_id)

    async def agents_for(self, task_id: str) -> AgentIds:
        """Who works on the task, first choice first (see :meth:`AgentStore.agents_for`)."""
        async with self.database.read() as session:
            return await AgentStore(session).agents_for(task_id)

    async def workers(self, task_id: str) -> AgentIds:
        """Whom an agent's write on the task is checked for (see :meth:`AgentStore.workers`)."""
        async with self.database.read() as session:
            return await AgentStore(session).workers(task_id)

    # --- presence (called by the agent hub) -------------------------------------------------

    async def online(self, agent_id: str, *, name: str | None, kind: str | None) -> None:
        """The agent connected: register it if unknown, mark it online."""
        async with self.writes.change() as change:
            session = change.session
            row = await session.get(AgentRow, agent_id)
            if row is None:
                await AgentStore(session).create(
                    AgentCreate(id=agent_id, name=name or agent_id, kind=kind or "generic")
                )
                row = await session.get(AgentRow, agent_id)
            assert row is not None
            previous = AgentStatus(row.status)
            current_task = row.current_task_id
            row.last_seen_at = utc_now()
        online = previous if previous in _KEPT_ON_RECONNECT else AgentStatus.IDLE
        if previous != online:
            await self._set_status(agent_id, current_task, online, previous)

    async def shown_offline(self, agent_ids: AgentIds) -> set[str]:
        """Those of ``agent_ids`` the registry shows offline."""
        async with self.database.read() as session:
            return await AgentStore(session).with_status(agent_ids, AgentStatus.OFFLINE)

    async def offline(self, agent_id: str) -> None:
        """The agent's connection is gone: mark it offline."""
        async with self.writes.change() as change:
            row = await change.session.get(AgentRow, agent_id)
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
        async with self.writes.change() as change:
            session = change.session
            if task_id is not None and await session.get(TaskRow, task_id) is not None:
                event = EventIn(
                    event_type=WebSocketEventType.AGENT_STATUS_CHANGE,
                    data={"agent_id": agent_id, "status": status.value, "previous": previous.value},
                    agent_id=agent_id,
                )
                await change.record(task_id, [event], actor=Actor.system("hub"), source="hub")
                return
            await AgentStore(session).patch(agent_id, {"status": status.value})
