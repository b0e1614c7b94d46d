"""The statements of requests (see :mod:`taskline.domain.requests` for the rules; the
application layer applies them), and the ``needs_input`` column they keep on their task.

Lock order, as everywhere a task changes: the task's row first (:meth:`RequestStore.lock_task`),
then its requests. Every change of a task's requests holds its task row, so two answers to
two requests of one task are ordered and ``needs_input`` is computed after the other's commit.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.requests import MAX_LISTED, Request, RequestStatus
from taskline.store.tables import REQUESTS, TASKS

__all__ = ["RequestStore"]

_R = REQUESTS.c
_OPEN = RequestStatus.OPEN.value
_COLUMNS = tuple(REQUESTS.c)
_KEYS = tuple(column.key for column in _COLUMNS)


def _request(row: Any) -> Request:
    return Request.model_validate(dict(zip(_KEYS, row, strict=True)))


def _row(request: Request) -> dict[str, Any]:
    values = request.model_dump(mode="python")
    if request.action is not None:
        values["action"] = request.action.model_dump(mode="json")
    values["kind"] = request.kind.value
    values["status"] = request.status.value
    return values


class RequestStore:
    """Request operations inside one transaction (the caller owns the session)."""

    def __init__(self, session: AsyncSession, *, skip_locked: bool = False) -> None:
        """``skip_locked``: the database has ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)."""
        self.session = session
        self.skip_locked = skip_locked

    async def lock_task(self, task_id: str) -> str | None:
        """Lock the task's row; return its status (None: there is no such task)."""
        connection = await self.session.connection()
        found = await connection.scalar(
            select(TASKS.c.status).where(TASKS.c.id == task_id).with_for_update()
        )
        return None if found is None else str(found)

    async def get(self, request_id: str, *, for_update: bool = False) -> Request | None:
        """The request (None: there is none); ``for_update`` locks its row."""
        statement = select(*_COLUMNS).where(_R.id == request_id)
        if for_update:
            statement = statement.with_for_update()
        connection = await self.session.connection()
        row = (await connection.execute(statement)).first()
        return None if row is None else _request(row)

    async def task_of(self, request_id: str) -> str | None:
        """The id of the request's task (no lock)."""
        connection = await self.session.connection()
        found = await connection.scalar(select(_R.task_id).where(_R.id == request_id))
        return None if found is None else str(found)

    async def find(
        self,
        *,
        task_id: str | None = None,
        statuses: Sequence[RequestStatus] = (),
        limit: int = MAX_LISTED,
    ) -> list[Request]:
        """Requests, oldest first, of one task or all, in any of ``statuses`` (none: all)."""
        statement = select(*_COLUMNS)
        if task_id is not None:
            statement = statement.where(_R.task_id == task_id)
        if statuses:
            statement = statement.where(_R.status.in_([s.value for s in statuses]))
        statement = statement.order_by(_R.created_at, _R.id).limit(limit)
        connection = await self.session.connection()
        return [_request(row) for row in await connection.execute(statement)]

    async def insert(self, request: Request) -> None:
        connection = await self.session.connection()
        await connection.execute(insert(REQUESTS).values(**_row(request)))

    async def save(self, request: Request) -> None:
        """Store what changed when the request left ``open``."""
        connection = await self.session.connection()
        await connection.execute(
            update(REQUESTS)
            .where(_R.id == request.id)
            .values(
                status=request.status.value,
                resolved_at=request.resolved_at,
                resolved_by=request.resolved_by,
                answer=request.answer,
                arguments=request.arguments,
                comment=request.comment,
            )
        )

    async def open_of(self, task_id: str) -> list[Request]:
        """The task's open requests, locked (the task's row must be locked first)."""
        connection = await self.session.connection()
        rows = await connection.execute(
            select(*_COLUMNS)
            .where(_R.task_id == task_id, _R.status == _OPEN)
            .order_by(_R.created_at, _R.id)
            .with_for_update()
        )
        return [_request(row) for row in rows]

    async def due_tasks(self, now: datetime, *, limit: int = 100) -> list[str]:
        """The tasks with open requests whose ``expires_at`` passed by ``now`` (no lock:
        the sweeper locks each task, then re-reads its requests)."""
        connection = await self.session.connection()
        rows = await connection.execute(
            select(_R.task_id)
            .where(_R.status == _OPEN, _R.expires_at <= now)
            .group_by(_R.task_id)
            .order_by(_R.task_id)
            .limit(limit)
        )
        return [str(row.task_id) for row in rows]

    async def refresh_needs_input(self, task_id: str) -> bool | None:
        """Set the task's ``needs_input`` to whether it has an open request; return the new
        value when it changed (the task's version moves on), None when it did not."""
        has_open = exists().where(_R.task_id == task_id, _R.status == _OPEN)
        connection = await self.session.connection()
        changed = await connection.scalar(
            update(TASKS)
            .where(TASKS.c.id == task_id, TASKS.c.needs_input != has_open)
            .values(needs_input=has_open, version=TASKS.c.version + 1)
            .returning(TASKS.c.needs_input)
        )
        return None if changed is None else bool(changed)
