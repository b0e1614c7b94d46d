"""Sections of a task and the subtasks inside them: create, rename, move, reorder, delete.

Positions are contiguous from 0 within their parent and are renumbered after every change.
Every change also bumps the task's ``updated_at``.
"""

from collections.abc import Iterable, Sequence
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.errors import InvalidInputError, NotFoundError
from taskline.domain.ids import new_id
from taskline.domain.models import (
    Section,
    SectionCreate,
    Subtask,
    SubtaskCreate,
)
from taskline.store.tables import SECTIONS, SUBTASKS, SectionRow, SubtaskRow, TaskRow
from taskline.store.tasks import TaskStore

__all__ = ["SectionStore"]


class SectionStore:
    """Section and subtask operations inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.tasks = TaskStore(session)

    async def sections_of(self, task_id: str, subtask_ids: Iterable[str]) -> dict[str, str]:
        """The section of each of ``subtask_ids`` that belongs to the task (one statement)."""
        ids = sorted(set(subtask_ids))
        if not ids:
            return {}
        connection = await self.session.connection()
        rows = await connection.execute(
            select(SUBTASKS.c.id, SUBTASKS.c.section_id)
            .join(SECTIONS, SECTIONS.c.id == SUBTASKS.c.section_id)
            .where(SUBTASKS.c.id.in_(ids), SECTIONS.c.task_id == task_id)
        )
        return {row.id: row.section_id for row in rows}

    async def set_done(self, subtask_id: str, done: bool) -> None:
        """Tick or untick a subtask in one Core statement (the caller checked it is the
        task's)."""
        connection = await self.session.connection()
        await connection.execute(
            update(SUBTASKS).where(SUBTASKS.c.id == subtask_id).values(done=done)
        )

    async def add_section(
        self, task_id: str, data: SectionCreate, *, position: int | None = None
    ) -> Section:
        """Insert a section at ``position`` (default: last) with its subtasks."""
        task = await self.tasks.get_row(task_id, for_update=True)
        section = SectionRow(
            id=new_id("sec"),
            title=data.title,
            position=0,
            subtasks=[
                SubtaskRow(id=new_id("sub"), title=s.title, done=s.done, notes=s.notes, position=i)
                for i, s in enumerate(data.subtasks)
            ],
        )
        sections = list(task.sections)
        sections.insert(_clamp(position, len(sections)), section)
        task.sections = sections
        _renumber(task.sections)
        await self.tasks.touch(task)
        await self.session.flush()
        return Section.model_validate(section)

    async def rename_section(self, task_id: str, section_id: str, title: str) -> Section:
        task = await self.tasks.get_row(task_id, for_update=True)
        section = _find_section(task, section_id)
        section.title = title
        await self.tasks.touch(task)
        await self.session.flush()
        return Section.model_validate(section)

    async def delete_section(self, task_id: str, section_id: str) -> None:
        task = await self.tasks.get_row(task_id, for_update=True)
        section = _find_section(task, section_id)
        task.sections.remove(section)
        _renumber(task.sections)
        await self.tasks.touch(task)
        await self.session.flush()

    async def reorder_sections(self, task_id: str, ids: Sequence[str]) -> list[Section]:
        """Put the task's sections in the order of ``ids`` (each id exactly once)."""
        task = await self.tasks.get_row(task_id, for_update=True)
        task.sections = _reordered(task.sections, ids, "sections")
        await self.tasks.touch(task)
        await self.session.flush()
        return [Section.model_validate(s) for s in task.sections]

    async def add_subtask(
        self, task_id: str, section_id: str, data: SubtaskCreate, *, position: int | None = None
    ) -> Subtask:
        task = await self.tasks.get_row(task_id, for_update=True)
        section = _find_section(task, section_id)
        subtask = SubtaskRow(
            id=new_id("sub"), title=data.title, done=data.done, notes=data.notes, position=0
        )
        subtasks = list(section.subtasks)
        subtasks.insert(_clamp(position, len(subtasks)), subtask)
        section.subtasks = subtasks
        _renumber(section.subtasks)
        await self.tasks.touch(task)
        await self.session.flush()
        return Subtask.model_validate(subtask)

    async def update_subtask(
        self,
        task_id: str,
        subtask_id: str,
        *,
        title: str | None = None,
        done: bool | None = None,
        notes: str | None = None,
        section_id: str | None = None,
    ) -> Subtask:
        """Change a subtask; ``section_id`` moves it to the end of that section."""
        task = await self.tasks.get_row(task_id, for_update=True)
        section, subtask = _find_subtask(task, subtask_id)
        if title is not None:
            subtask.title = title
        if done is not None:
            subtask.done = done
        if notes is not None:
            subtask.notes = notes
        if section_id is not None and section_id != section.id:
            target = _find_section(task, section_id, field="section_id")
            section.subtasks.remove(subtask)
            _renumber(section.subtasks)
            await self.session.flush()
            moved = SubtaskRow(
                id=subtask.id,
                title=subtask.title,
                done=subtask.done,
                notes=subtask.notes,
                position=len(target.subtasks),
            )
            target.subtasks.append(moved)
            subtask = moved
        await self.tasks.touch(task)
        await self.session.flush()
        return Subtask.model_validate(subtask)

    async def toggle_subtask(self, task_id: str, subtask_id: str) -> Subtask:
        """Flip a subtask's ``done``."""
        task = await self.tasks.get_row(task_id)
        _, subtask = _find_subtask(task, subtask_id)
        return await self.update_subtask(task_id, subtask_id, done=not subtask.done)

    async def delete_subtask(self, task_id: str, subtask_id: str) -> None:
        task = await self.tasks.get_row(task_id, for_update=True)
        section, subtask = _find_subtask(task, subtask_id)
        section.subtasks.remove(subtask)
        _renumber(section.subtasks)
        await self.tasks.touch(task)
        await self.session.flush()

    async def reorder_subtasks(
        self, task_id: str, section_id: str, ids: Sequence[str]
    ) -> list[Subtask]:
        task = await self.tasks.get_row(task_id, for_update=True)
        section = _find_section(task, section_id)
        section.subtasks = _reordered(section.subtasks, ids, "subtasks")
        await self.tasks.touch(task)
        await self.session.flush()
        return [Subtask.model_validate(s) for s in section.subtasks]


_Positioned = TypeVar("_Positioned", SectionRow, SubtaskRow)


def _clamp(position: int | None, length: int) -> int:
    if position is None:
        return length
    return max(0, min(position, length))


def _renumber(items: Sequence[_Positioned]) -> None:
    for i, item in enumerate(items):
        item.position = i


def _reordered(items: list[_Positioned], ids: Sequence[str], what: str) -> list[_Positioned]:
    by_id = {item.id: item for item in items}
    if len(ids) != len(set(ids)) or set(ids) != set(by_id):
        raise InvalidInputError(
            f"ids must list each of the {len(by_id)} {what} exactly once: "
            f"{', '.join(sorted(by_id)) or '(none)'}",
            field="ids",
        )
    ordered = [by_id[i] for i in ids]
    _renumber(ordered)
    return ordered


def _find_section(task: TaskRow, section_id: str, *, field: str | None = None) -> SectionRow:
    for section in task.sections:
        if section.id == section_id:
            return section
    if field:
        raise InvalidInputError(f"section {section_id!r} is not in task {task.id!r}", field=field)
    raise NotFoundError("section", section_id)


def _find_subtask(task: TaskRow, subtask_id: str) -> tuple[SectionRow, SubtaskRow]:
    for section in task.sections:
        for subtask in section.subtasks:
            if subtask.id == subtask_id:
                return section, subtask
    raise NotFoundError("subtask", subtask_id)
