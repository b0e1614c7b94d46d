"""Reading and writing agents."""

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from taskline.domain.ids import new_id
from taskline.domain.models import Agent, AgentCreate, utc_now
from taskline.domain.status import AgentStatus
from taskline.store.tables import AgentRow, TaskRow

__all__ = ["AgentStore"]


class AgentStore:
    """Agent operations inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, agent_id: str) -> Agent:
        return Agent.model_validate(await self._row(agent_id))

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
        """Delete the agent; tasks assigned to it become unassigned."""
        result = await self.session.execute(delete(AgentRow).where(AgentRow.id == agent_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFoundError("agent", agent_id)

    async def _row(self, agent_id: str) -> AgentRow:
        row = await self.session.get(AgentRow, agent_id, populate_existing=True)
        if row is None:
            raise NotFoundError("agent", agent_id)
        return row
