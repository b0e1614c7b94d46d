"""The thread of human and agent messages on a task."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.errors import NotFoundError
from taskline.domain.ids import new_id
from taskline.domain.models import Message, MessageCreate, utc_now
from taskline.store.tables import MessageRow, TaskRow

__all__ = ["MessageStore"]


class MessageStore:
    """Message operations inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, task_id: str) -> list[Message]:
        """Return the task's messages, oldest first."""
        await self._check_task(task_id)
        rows = (
            await self.session.execute(
                select(MessageRow)
                .where(MessageRow.task_id == task_id)
                .order_by(MessageRow.created_at, MessageRow.id)
            )
        ).scalars()
        return [Message.model_validate(row) for row in rows]

    async def add(self, task_id: str, data: MessageCreate, *, actor: str | None = None) -> Message:
        await self._check_task(task_id)
        row = MessageRow(
            id=new_id("msg"),
            task_id=task_id,
            author_kind=data.author_kind.value,
            author=data.author,
            content=data.content,
            created_at=utc_now(),
            actor=actor,
        )
        self.session.add(row)
        await self.session.flush()
        return Message.model_validate(row)

    async def _check_task(self, task_id: str) -> None:
        if await self.session.scalar(select(TaskRow.id).where(TaskRow.id == task_id)) is None:
            raise NotFoundError("task", task_id)
