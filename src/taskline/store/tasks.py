"""Reading and writing tasks with their tags, sections and subtasks."""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from taskline.domain.documents import SectionPlan, plan_sections
from taskline.domain.errors import InvalidInputError, NotFoundError, PreconditionFailedError
from taskline.domain.ids import new_id
from taskline.domain.leases import LeaseState, ending, on_status
from taskline.domain.models import SectionCreate, Task, TaskCreate, TaskPage, TaskReplace, utc_now
from taskline.domain.preconditions import IfMatch
from taskline.domain.queries import SortField, TaskQuery
from taskline.domain.status import (
    TERMINAL_STATUSES,
    Priority,
    TaskStatus,
    check_transition,
    status_timestamps,
)
from taskline.store.events import update_many
from taskline.store.tables import (
    SECTIONS,
    SUBTASKS,
    TAGS,
    TASKS,
    AgentRow,
    SectionRow,
    TagRow,
    TaskRow,
)
from taskline.store.task_reads import (
    TASK_COLUMNS,
    load_task_documents,
    load_tasks,
)

__all__ = ["TaskStore", "load_options"]

# The SET clause comes from the parameters given (only the columns that changed), and the
# version moves on: whatever sets a task's columns changes its document.
_UPDATE_TASK = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("where_task_id"))
    .values(version=TASKS.c.version + 1)
)

_PRIORITY_ORDER = case({p.value: p.rank for p in Priority}, value=TaskRow.priority, else_=-1)
_SORT_COLUMNS: dict[SortField, Any] = {
    SortField.CREATED_AT: TaskRow.created_at,
    SortField.UPDATED_AT: TaskRow.updated_at,
    SortField.PRIORITY: _PRIORITY_ORDER,
    SortField.PROGRESS: TaskRow.progress,
    SortField.TITLE: func.lower(TaskRow.title),
    SortField.STATUS: TaskRow.status,
}


def load_options() -> tuple[Any, ...]:
    """Eager loads for a whole task: three extra queries however many tasks are read."""
    return (
        selectinload(TaskRow.sections).selectinload(SectionRow.subtasks),
        selectinload(TaskRow.tag_rows),
    )


class TaskStore:
    """Task operations inside one transaction (the caller owns the session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- reading ----------------------------------------------------------------------------

    async def get(self, task_id: str) -> Task:
        """Return the task; raise :class:`NotFoundError` if there is none."""
        return Task.model_validate(await self.get_document(task_id))

    async def exists(self, task_id: str) -> bool:
        """Whether the task exists (one indexed lookup, nothing loaded)."""
        found = await self.session.scalar(select(TaskRow.id).where(TaskRow.id == task_id))
        return found is not None

    async def get_document(self, task_id: str) -> dict[str, Any]:
        """Return the task as a document (see :mod:`taskline.store.task_reads`)."""
        statement = select(*TASK_COLUMNS).where(TaskRow.id == task_id)
        documents = await load_task_documents(self.session, statement)
        if not documents:
            raise NotFoundError("task", task_id)
        return documents[0]

    async def get_row(self, task_id: str, *, for_update: bool = False) -> TaskRow:
        """Return the task's row with everything loaded (optionally locked for update)."""
        statement = select(TaskRow).where(TaskRow.id == task_id).options(*load_options())
        if for_update:
            statement = statement.with_for_update()
        row = (
            await self.session.execute(statement.execution_options(populate_existing=True))
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError("task", task_id)
        return row

    async def page(self, query: TaskQuery) -> TaskPage:
        """Return one page of tasks matching ``query`` and the total number of matches."""
        return TaskPage.model_validate(await self.page_document(query))

    async def page_document(self, query: TaskQuery) -> dict[str, Any]:
        """:meth:`page` as a document: ``{items, total, limit, offset}``."""
        order = _SORT_COLUMNS[query.sort]
        ordering = (order.desc(), TaskRow.id.desc()) if query.descending else (order, TaskRow.id)
        statement = (
            _filtered(select(*TASK_COLUMNS), query)
            .order_by(*ordering)
            .limit(query.limit)
            .offset(query.offset)
        )
        filtered = _filtered(select(TaskRow.id), query).subquery()
        total = (
            await self.session.execute(select(func.count()).select_from(filtered))
        ).scalar_one()
        items = await load_task_documents(self.session, statement)
        return {
            "items": items,
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }

    async def all(self, query: TaskQuery | None = None) -> list[Task]:
        """Return every task matching ``query`` (no paging), oldest first."""
        statement = select(*TASK_COLUMNS).order_by(TaskRow.created_at, TaskRow.id)
        if query is not None:
            statement = _filtered(statement, query)
        return await load_tasks(self.session, statement)

    # --- writing ----------------------------------------------------------------------------

    async def claim(self, task_id: str, if_match: IfMatch | None = None) -> int:
        """Take the task for a change and return its new version.

        One statement moves the version on, if the task is at a version ``if_match`` allows
        (compare-and-set: ``UPDATE … WHERE id = … AND version IN (…)``), and locks the row
        until the commit, so of two changes made from the same version exactly one passes
        (PostgreSQL re-checks the condition once the first commits; SQLite writers run one at
        a time). Every change to a task's row, tags, sections or subtasks made through the
        ORM starts with this (``replace``, ``patch``, ``delete`` and the section store's
        changes rely on it); Core writes move the version themselves (``set_columns``).

        Raises:
            NotFoundError: there is no such task (whatever ``if_match`` says).
            PreconditionFailedError: the task is at a version ``if_match`` does not allow.
        """
        statement = update(TASKS).where(TASKS.c.id == task_id)
        if if_match is not None and not if_match.any:
            statement = statement.where(TASKS.c.version.in_(sorted(if_match.versions)))
        connection = await self.session.connection()
        claimed = await connection.scalar(
            statement.values(version=TASKS.c.version + 1).returning(TASKS.c.version)
        )
        if claimed is not None:
            return int(claimed)
        current = await connection.scalar(select(TASKS.c.version).where(TASKS.c.id == task_id))
        if current is None or if_match is None:
            raise NotFoundError("task", task_id)
        raise PreconditionFailedError(
            "task", task_id, current=int(current), required=if_match.describe()
        )

    async def create(self, data: TaskCreate, *, task_id: str | None = None) -> Task:
        """Insert a task with its tags, sections and subtasks; return it as stored.

        Plain Core inserts (one statement per table, many rows each): creating is a hot path,
        and the ORM's unit of work would cost more than the statements themselves.
        """
        await self._check_agent(data.assigned_agent_id)
        now = utc_now()
        document: dict[str, Any] = {
            "id": task_id or new_id("task"),
            "title": data.title,
            "description": data.description,
            "status": data.status.value,
            "priority": data.priority.value,
            "progress": 1.0 if data.status == TaskStatus.COMPLETED else data.progress,
            "confidence": data.confidence,
            "assigned_agent_id": data.assigned_agent_id,
            "result": data.result,
            "created_at": now,
            "updated_at": now,
            "started_at": now if data.status != TaskStatus.PENDING else None,
            "completed_at": now if data.status in TERMINAL_STATUSES else None,
            "version": 1,
        }
        await self.session.execute(insert(TASKS), [document])
        document["tags"] = list(data.tags)
        if data.tags:
            await self.session.execute(
                insert(TAGS),
                [
                    {"task_id": document["id"], "tag": tag, "position": i}
                    for i, tag in enumerate(data.tags)
                ],
            )
        document["sections"] = await self._insert_sections(document["id"], data.sections)
        return Task.model_validate(document)

    async def _insert_sections(
        self, task_id: str, sections: Sequence[SectionCreate]
    ) -> list[dict[str, Any]]:
        """Insert ``sections`` with their subtasks; return them as documents."""
        documents: list[dict[str, Any]] = []
        subtask_rows: list[dict[str, Any]] = []
        for i, section in enumerate(sections):
            section_id = new_id("sec")
            subtasks = [
                {
                    "id": new_id("sub"),
                    "title": sub.title,
                    "done": sub.done,
                    "notes": sub.notes,
                    "position": j,
                }
                for j, sub in enumerate(section.subtasks)
            ]
            subtask_rows.extend({**sub, "section_id": section_id} for sub in subtasks)
            documents.append(
                {"id": section_id, "title": section.title, "position": i, "subtasks": subtasks}
            )
        if documents:
            await self.session.execute(
                insert(SECTIONS),
                [
                    dict(id=d["id"], task_id=task_id, title=d["title"], position=d["position"])
                    for d in documents
                ],
            )
        if subtask_rows:
            await self.session.execute(insert(SUBTASKS), subtask_rows)
        return documents

    async def replace(self, task_id: str, data: TaskReplace) -> Task:
        """Replace the task's fields as described on :class:`TaskReplace` (the caller has
        claimed the task: :meth:`claim`, and checked its read-only fields)."""
        row = await self.get_row(task_id, for_update=True)
        fields = data.writable()
        if data.status is not None:
            fields["status"] = data.status
        fields["tags"] = data.tags
        if data.sections is not None:
            plans = plan_sections(Task.model_validate(row), data.sections, new_id)
            await self._write_sections(task_id, plans)
        await self._apply(row, fields)
        await self.session.flush()
        return await self.get(task_id)

    async def _write_sections(self, task_id: str, plans: Sequence[SectionPlan]) -> None:
        """Make the task's sections and subtasks those of ``plans``: kept ones updated in
        place (a subtask may change section), new ones inserted, the others deleted."""
        connection = await self.session.connection()
        kept_sections = [p.id for p in plans if not p.new]
        subtasks = [(p.id, sub) for p in plans for sub in p.subtasks]
        kept_subtasks = [sub.id for _, sub in subtasks if not sub.new]
        of_task = select(SECTIONS.c.id).where(SECTIONS.c.task_id == task_id)
        await connection.execute(
            delete(SUBTASKS).where(
                SUBTASKS.c.section_id.in_(of_task), SUBTASKS.c.id.not_in(kept_subtasks)
            )
        )
        new_sections = [
            {"id": p.id, "task_id": task_id, "title": p.title, "position": p.position}
            for p in plans
            if p.new
        ]
        if new_sections:
            await connection.execute(insert(SECTIONS), new_sections)
        if kept_sections:
            await connection.execute(
                update(SECTIONS).where(SECTIONS.c.id == bindparam("where_id")),
                [
                    {"where_id": p.id, "title": p.title, "position": p.position}
                    for p in plans
                    if not p.new
                ],
            )
        rows = [
            {
                "section_id": section_id,
                "title": sub.title,
                "done": sub.done,
                "notes": sub.notes,
                "position": sub.position,
            }
            | ({"id": sub.id} if sub.new else {"where_id": sub.id})
            for section_id, sub in subtasks
        ]
        if kept_subtasks:
            await connection.execute(
                update(SUBTASKS).where(SUBTASKS.c.id == bindparam("where_id")),
                [r for r in rows if "where_id" in r],
            )
        if len(kept_subtasks) < len(rows):
            await connection.execute(insert(SUBTASKS), [r for r in rows if "id" in r])
        await connection.execute(
            delete(SECTIONS).where(
                SECTIONS.c.task_id == task_id, SECTIONS.c.id.not_in([p.id for p in plans])
            )
        )

    async def patch(self, task_id: str, changes: dict[str, Any]) -> Task:
        """Change only the given fields (already validated by :class:`TaskPatch`; the caller
        has claimed the task: :meth:`claim`)."""
        row = await self.get_row(task_id, for_update=True)
        await self._apply(row, changes)
        await self.session.flush()
        return await self.get(task_id)

    async def delete(self, task_id: str) -> None:
        """Delete the task and everything in it; agents working on it are released."""
        result = await self.session.execute(delete(TaskRow).where(TaskRow.id == task_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFoundError("task", task_id)
        await self.session.execute(
            update(AgentRow).where(AgentRow.current_task_id == task_id).values(current_task_id=None)
        )

    async def set_columns(self, task_id: str, changes: dict[str, Any]) -> bool:
        """Set task columns in one Core statement (locking the row); False if no such task.

        Nothing here checks the values: the caller applied the domain rules
        (:mod:`taskline.domain.effects`).
        """
        connection = await self.session.connection()
        result = await connection.execute(_UPDATE_TASK, {"where_task_id": task_id, **changes})
        return bool(result.rowcount)

    async def set_columns_many(self, changes: dict[str, dict[str, Any]]) -> None:
        """Set columns of several tasks (task id -> columns); one statement per set of
        changed columns. The caller has locked the rows and checked the values."""
        await update_many(self.session, _UPDATE_TASK, "where_task_id", changes)

    async def touch(self, row: TaskRow) -> None:
        """Mark the task as changed now."""
        row.updated_at = utc_now()

    async def _apply(self, row: TaskRow, fields: dict[str, Any]) -> None:
        """Set the fields (a person's change): a status move or a new assignee may end the
        task's lease, which the holder then has lost (see :mod:`taskline.domain.leases`)."""
        now = utc_now()
        lease = LeaseState(
            holder=row.lease_agent_id,
            token=row.lease_token,
            expires_at=row.lease_expires_at,
            seconds=row.lease_seconds,
            lost_by=row.lease_lost_by,
        )
        lease_columns: dict[str, Any] = {}
        if "assigned_agent_id" in fields:
            await self._check_agent(fields["assigned_agent_id"])
            if fields["assigned_agent_id"] != lease.holder:
                lease_columns.update(ending(lease, by=None, now=now))
        if "status" in fields:
            current = TaskStatus(row.status)
            new = TaskStatus(fields.pop("status"))
            check_transition(row.id, current, new)
            lease_columns = {**on_status(lease, current, new, by=None, now=now), **lease_columns}
            for name, value in status_timestamps(
                current, new, started_at=row.started_at, now=now
            ).items():
                setattr(row, name, value)
            row.status = new.value
            if new == TaskStatus.COMPLETED and "progress" not in fields:
                row.progress = 1.0
        if "priority" in fields:
            row.priority = Priority(fields.pop("priority")).value
        if "tags" in fields:
            row.tag_rows = _tag_rows(fields.pop("tags"))
        for name, value in {**fields, **lease_columns}.items():
            setattr(row, name, value)
        row.updated_at = now

    async def _check_agent(self, agent_id: str | None) -> None:
        if agent_id is None:
            return
        found = await self.session.scalar(select(AgentRow.id).where(AgentRow.id == agent_id))
        if found is None:
            raise InvalidInputError(f"agent {agent_id!r} does not exist", field="assigned_agent_id")


def _filtered(statement: Select[Any], query: TaskQuery) -> Select[Any]:
    if query.statuses:
        statement = statement.where(TaskRow.status.in_([s.value for s in query.statuses]))
    if query.agent_id:
        statement = statement.where(TaskRow.assigned_agent_id == query.agent_id)
    if query.tag:
        tagged = select(TagRow.task_id).where(TagRow.tag == query.tag)
        statement = statement.where(TaskRow.id.in_(tagged))
    if query.search:
        pattern = f"%{_escape_like(query.search.lower())}%"
        statement = statement.where(
            or_(
                func.lower(TaskRow.title).like(pattern, escape="\\"),
                func.lower(TaskRow.description).like(pattern, escape="\\"),
            )
        )
    if query.ids:
        statement = statement.where(TaskRow.id.in_(query.ids))
    if query.needs_input is not None:
        statement = statement.where(TaskRow.needs_input.is_(query.needs_input))
    return statement


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tag_rows(tags: Iterable[str]) -> list[TagRow]:
    return [TagRow(tag=tag, position=i) for i, tag in enumerate(tags)]
