"""Reading and writing agents."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from taskline.domain.ids import new_id
from taskline.domain.models import Agent, AgentCreate, utc_now
from taskline.domain.status import AgentStatus
from taskline.store.tables import AGENTS, TASKS, AgentRow, TaskRow

__all__ = ["AgentStore"]

_UPDATE_AGENT = update(AGENTS).where(AGENTS.c.id == bindparam("where_agent_id"))


class AgentStore:
    """Agent operations inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def statuses(self, agent_ids: Iterable[str]) -> dict[str, AgentStatus]:
        """The status of each of ``agent_ids`` that exists (one statement)."""
        ids = sorted(set(agent_ids))
        if not ids:
            return {}
        connection = await self.session.connection()
        rows = await connection.execute(
            select(AGENTS.c.id, AGENTS.c.status).where(AGENTS.c.id.in_(ids))
        )
        return {row.id: AgentStatus(row.status) for row in rows}

    async def set_columns(self, agent_id: str, changes: dict[str, Any]) -> None:
        """Set agent columns in one Core statement (the caller applied the rules)."""
        connection = await self.session.connection()
        await connection.execute(_UPDATE_AGENT, {"where_agent_id": agent_id, **changes})

    async def get(self, agent_id: str) -> Agent:
        return Agent.model_validate(await self._row(agent_id))

    async def working_on(self, task_id: str) -> list[str]:
        """The agents whose current task is ``task_id`` (by id)."""
        rows = await self.session.scalars(
            select(AgentRow.id).where(AgentRow.current_task_id == task_id).order_by(AgentRow.id)
        )
        return [str(row) for row in rows]

    async def agents_for(self, task_id: str) -> list[str]:
        """Who works on a task, first choice first: its assigned agent, then the agents
        whose current task it is. Empty for an unknown task or one nobody works on."""
        assigned = await self.session.scalar(
            select(TaskRow.assigned_agent_id).where(TaskRow.id == task_id)
        )
        found = [str(assigned)] if assigned else []
        return found + [a for a in await self.working_on(task_id) if a not in found]

    async def workers(self, task_id: str) -> list[str]:
        """The agents an agent's write on the task is checked for (``require_on_task``):
        :meth:`agents_for`, and the agent that lost the task's last lease, whose writes go on
        to the lease's fence in the write's transaction, which refuses them with a 409 naming
        the holder (see :mod:`taskline.domain.leases`) rather than a 403 naming the assignee."""
        found = await self.agents_for(task_id)
        lost_by = await self.session.scalar(
            select(TaskRow.lease_lost_by).where(TaskRow.id == task_id)
        )
        return [*found, str(lost_by)] if lost_by and lost_by not in found else found

    async def next_task(self, agent_id: str) -> str | None:
        """The id of the oldest pending task assigned to ``agent_id``."""
        found = await self.session.scalar(
            select(TaskRow.id)
            .where(TaskRow.assigned_agent_id == agent_id, TaskRow.status == "pending")
            .order_by(TaskRow.created_at, TaskRow.id)
            .limit(1)
        )
        return str(found) if found else None

    async def with_status(self, agent_ids: list[str], status: AgentStatus) -> set[str]:
        """Those of ``agent_ids`` whose status is ``status``."""
        if not agent_ids:
            return set()
        rows = await self.session.scalars(
            select(AgentRow.id).where(AgentRow.id.in_(agent_ids), AgentRow.status == status.value)
        )
        return {str(row) for row in rows}

    async def list(self, *, status: AgentStatus | None = None) -> list[Agent]:
        """Return every agent (optionally only those in ``status``), by name."""
        statement = select(AgentRow).order_by(func.lower(AgentRow.name), AgentRow.id)
        if status is not None:
            statement = statement.where(AgentRow.status == status.value)
        rows = (await self.session.execute(statement)).scalars().all()
        return [Agent.model_validate(row) for row in rows]

    async def create(self, data: AgentCreate) -> Agent:
        """Insert an agent; a caller-chosen id that is taken raises :class:`AlreadyExistsError`."""
        agent_id = data.id or new_id("agent")
        if data.id and await self.session.get(AgentRow, data.id) is not None:
            raise AlreadyExistsError("agents", [data.id])
        now = utc_now()
        row = AgentRow(
            id=agent_id,
            name=data.name,
            kind=data.kind,
            status=data.status.value,
            current_task_id=None,
            last_seen_at=None,
            metadata_=data.metadata,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return Agent.model_validate(row)

    async def patch(self, agent_id: str, changes: dict[str, Any]) -> Agent:
        row = await self._row(agent_id)
        if changes.get("current_task_id") is not None:
            found = await self.session.scalar(
                select(TaskRow.id).where(TaskRow.id == changes["current_task_id"])
            )
            if found is None:
                raise InvalidInputError(
                    f"task {changes['current_task_id']!r} does not exist", field="current_task_id"
                )
        for name, value in changes.items():
            if name == "metadata":
                row.metadata_ = value
            elif name == "status":
                row.status = AgentStatus(value).value
            else:
                setattr(row, name, value)
        row.updated_at = utc_now()
        await self.session.flush()
        return Agent.model_validate(row)

    async def delete(self, agent_id: str) -> None:
        """Delete the agent; tasks assigned to it become unassigned (a change to each: its
        version moves on). The agent's row is locked first, so a task being assigned to it
        meanwhile either is unassigned here too or fails its foreign key."""
        locked = await self.session.scalar(
            select(AgentRow.id).where(AgentRow.id == agent_id).with_for_update()
        )
        if locked is None:
            raise NotFoundError("agent", agent_id)
        await self.session.execute(
            update(TASKS)
            .where(TASKS.c.assigned_agent_id == agent_id)
            .values(assigned_agent_id=None, version=TASKS.c.version + 1)
        )
        await self.session.execute(delete(AgentRow).where(AgentRow.id == agent_id))

    async def _row(self, agent_id: str) -> AgentRow:
        row = await self.session.get(AgentRow, agent_id, populate_existing=True)
        if row is None:
            raise NotFoundError("agent", agent_id)
        return row
