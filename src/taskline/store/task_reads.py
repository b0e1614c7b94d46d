"""Reading whole tasks with plain Core queries (no ORM objects): the hot read path.

A page of tasks costs three queries whatever its size: the tasks, then the tags and the
sections-with-subtasks of all of them at once. Results are *documents*: plain dicts shaped
exactly like :class:`~taskline.domain.models.Task` (datetimes stay ``datetime``), which the API
can serialise without building models; :func:`load_tasks` validates them into models.
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.models import Task
from taskline.store.tables import SectionRow, SubtaskRow, TagRow, TaskRow, lease_document

__all__ = ["TASK_COLUMNS", "load_task_documents", "load_tasks"]

TASK_COLUMNS = tuple(TaskRow.__table__.c)
_TASK_KEYS = tuple(column.key for column in TASK_COLUMNS)
#: Columns of the lease the document shows as one ``lease`` member (or not at all).
_LEASE_KEYS = tuple(key for key in _TASK_KEYS if key.startswith("lease_"))


async def load_tasks(session: AsyncSession, statement: Select[Any]) -> list[Task]:
    """Like :func:`load_task_documents`, validated into :class:`Task` models."""
    return [Task.model_validate(doc) for doc in await load_task_documents(session, statement)]


async def load_task_documents(
    session: AsyncSession, statement: Select[Any]
) -> list[dict[str, Any]]:
    """Run ``statement`` (a select of :data:`TASK_COLUMNS`) and return its tasks, in its
    order, as documents with their tags, sections and subtasks."""
    rows = (await session.execute(statement)).all()
    return await _complete(session, [_document(row) for row in rows])


def _document(row: Any) -> dict[str, Any]:
    """A task row as a document: its lease columns become the ``lease`` member."""
    document = dict(zip(_TASK_KEYS, row, strict=True))
    lease = {key: document.pop(key) for key in _LEASE_KEYS}
    document["lease"] = lease_document(
        lease["lease_agent_id"], lease["lease_token"], lease["lease_expires_at"]
    )
    return document


async def _complete(session: AsyncSession, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add tags, sections and subtasks to task documents (two queries for all of them)."""
    if not documents:
        return documents
    ids = [doc["id"] for doc in documents]
    tags = await _tags(session, ids)
    sections = await _sections(session, ids)
    for doc in documents:
        doc["tags"] = tags.get(doc["id"], [])
        doc["sections"] = sections.get(doc["id"], [])
    return documents


async def _tags(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[str]]:
    result = await session.execute(
        select(TagRow.task_id, TagRow.tag)
        .where(TagRow.task_id.in_(ids))
        .order_by(TagRow.task_id, TagRow.position)
    )
    tags: dict[str, list[str]] = defaultdict(list)
    for task_id, tag in result:
        tags[task_id].append(tag)
    return tags


async def _sections(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Sections with their subtasks, in one outer join ordered by position."""
    result = await session.execute(
        select(
            SectionRow.task_id,
            SectionRow.id,
            SectionRow.title,
            SectionRow.position,
            SubtaskRow.id,
            SubtaskRow.title,
            SubtaskRow.done,
            SubtaskRow.notes,
            SubtaskRow.position,
        )
        .select_from(SectionRow)
        .outerjoin(SubtaskRow, SubtaskRow.section_id == SectionRow.id)
        .where(SectionRow.task_id.in_(ids))
        .order_by(SectionRow.task_id, SectionRow.position, SubtaskRow.position)
    )
    sections: dict[str, list[dict[str, Any]]] = defaultdict(list)
    current: dict[str, Any] | None = None
    for task_id, section_id, title, position, sub_id, sub_title, done, notes, sub_pos in result:
        if current is None or current["id"] != section_id:
            current = {"id": section_id, "title": title, "position": position, "subtasks": []}
            sections[task_id].append(current)
        if sub_id is not None:
            current["subtasks"].append(
                {
                    "id": sub_id,
                    "title": sub_title,
                    "done": done,
                    "notes": notes,
                    "position": sub_pos,
                }
            )
    return sections
