"""Bulk reading and writing of a whole board, for exports and imports.

An import keeps every id, timestamp, position and status exactly as given (it restores a
board; it does not replay its history), so export → import → export is identical.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from taskline.domain.errors import AlreadyExistsError, InvalidInputError
from taskline.domain.models import Agent, Message, Task
from taskline.store.tables import (
    AgentRow,
    MessageRow,
    SectionRow,
    SubtaskRow,
    TagRow,
    TaskRow,
)

__all__ = ["ImportMode", "ImportSummary", "import_board", "messages_by_task"]


class ImportMode(StrEnum):
    """What to do with a task or agent id that already exists."""

    CREATE = "create"  #: refuse the whole import (409) and name the ids
    REPLACE = "replace"  #: overwrite the existing task or agent


@dataclass(frozen=True, slots=True)
class ImportSummary:
    tasks: int
    agents: int
    messages: int
    replaced: int


async def messages_by_task(
    session: AsyncSession, task_ids: Sequence[str]
) -> dict[str, list[Message]]:
    """Return the messages of ``task_ids`` grouped by task, oldest first, in one query."""
    grouped: dict[str, list[Message]] = {task_id: [] for task_id in task_ids}
    if not task_ids:
        return grouped
    rows = (
        await session.execute(
            select(MessageRow)
            .where(MessageRow.task_id.in_(task_ids))
            .order_by(MessageRow.created_at, MessageRow.id)
        )
    ).scalars()
    for row in rows:
        grouped[row.task_id].append(Message.model_validate(row))
    return grouped


async def import_board(
    session: AsyncSession,
    tasks: Sequence[Task],
    agents: Sequence[Agent],
    messages: Mapping[str, Sequence[Message]],
    *,
    mode: ImportMode = ImportMode.CREATE,
) -> ImportSummary:
    """Insert ``agents``, then ``tasks`` with their messages, all or nothing.

    Raises:
        AlreadyExistsError: in ``create`` mode, when any task or agent id is taken.
        InvalidInputError: a task assigned to an agent that is neither imported nor present,
            or ids repeated inside the document.
    """
    _check_unique([t.id for t in tasks], "tasks")
    _check_unique([a.id for a in agents], "agents")
    task_ids = [t.id for t in tasks]
    agent_ids = [a.id for a in agents]
    existing_tasks = await _existing(session, TaskRow.id, task_ids)
    existing_agents = await _existing(session, AgentRow.id, agent_ids)
    if mode == ImportMode.CREATE and (existing_tasks or existing_agents):
        kind = "tasks" if existing_tasks else "agents"
        raise AlreadyExistsError(kind, sorted(existing_tasks or existing_agents))
    known_agents = set(agent_ids) | await _existing(
        session, AgentRow.id, [t.assigned_agent_id for t in tasks if t.assigned_agent_id]
    )
    for index, task in enumerate(tasks):
        if task.assigned_agent_id and task.assigned_agent_id not in known_agents:
            raise InvalidInputError(
                f"task {task.id!r} is assigned to agent {task.assigned_agent_id!r}, "
                "which is neither in the document nor on this board",
                field=f"tasks.{index}.assigned_agent_id",
            )
    replaced_versions: dict[str, int] = {}
    if existing_tasks:
        rows = await session.execute(
            select(TaskRow.id, TaskRow.version).where(TaskRow.id.in_(existing_tasks))
        )
        replaced_versions = {task_id: version for task_id, version in rows}
        await session.execute(delete(TaskRow).where(TaskRow.id.in_(existing_tasks)))
    for agent in agents:
        if agent.id in existing_agents:
            await session.execute(delete(AgentRow).where(AgentRow.id == agent.id))
            await session.flush()
        session.add(_agent_row(agent))
    await session.flush()
    message_count = 0
    for task in tasks:
        # a replaced task moves past the version it had: an ETag read before never matches
        version = max(task.version, replaced_versions.get(task.id, 0) + 1)
        session.add(_task_row(task, version=version))
    await session.flush()
    for task in tasks:
        for message in messages.get(task.id, ()):
            session.add(_message_row(task.id, message))
            message_count += 1
    await session.flush()
    return ImportSummary(
        tasks=len(tasks),
        agents=len(agents),
        messages=message_count,
        replaced=len(existing_tasks) + len(existing_agents),
    )


def _check_unique(ids: Sequence[str], kind: str) -> None:
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise InvalidInputError(
            f"{kind} ids repeated in the document: {', '.join(repeated)}", field=kind
        )


async def _existing(
    session: AsyncSession, column: InstrumentedAttribute[str], ids: Sequence[str]
) -> set[str]:
    """Return which of ``ids`` exist in ``column`` (queried in chunks of 500)."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        found.update((await session.execute(select(column).where(column.in_(part)))).scalars())
    return found


def _agent_row(agent: Agent) -> AgentRow:
    return AgentRow(
        id=agent.id,
        name=agent.name,
        kind=agent.kind,
        status=agent.status.value,
        current_task_id=agent.current_task_id,
        last_seen_at=agent.last_seen_at,
        metadata_=agent.metadata,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


def _task_row(task: Task, *, version: int) -> TaskRow:
    row = TaskRow(
        id=task.id,
        title=task.title,
        description=task.description,
        status=task.status.value,
        priority=task.priority.value,
        progress=task.progress,
        confidence=task.confidence,
        assigned_agent_id=task.assigned_agent_id,
        result=task.result,
        created_at=task.created_at,
        updated_at=task.updated_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
        version=version,
    )
    row.tag_rows = [TagRow(tag=tag, position=i) for i, tag in enumerate(task.tags)]
    row.sections = [
        SectionRow(
            id=section.id,
            title=section.title,
            position=section.position,
            subtasks=[
                SubtaskRow(
                    id=sub.id,
                    title=sub.title,
                    done=sub.done,
                    notes=sub.notes,
                    position=sub.position,
                )
                for sub in section.subtasks
            ],
        )
        for section in task.sections
    ]
    return row


def _message_row(task_id: str, message: Message) -> MessageRow:
    return MessageRow(
        id=message.id,
        task_id=task_id,
        author_kind=message.author_kind.value,
        author=message.author,
        content=message.content,
        created_at=message.created_at,
        actor=message.actor,
    )
