"""Exports (what to export: the tasks, their agents and messages) and imports."""

import logging

from taskline.domain.access import Action, require
from taskline.domain.actors import Actor
from taskline.domain.json_bounds import readable
from taskline.domain.models import Agent, Task, utc_now
from taskline.domain.queries import TaskQuery
from taskline.export import ExportBundle
from taskline.export.json_export import ExportDocument
from taskline.service.writes import Writes
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.tasks import TaskStore
from taskline.store.transfer import ImportMode, ImportSummary, import_board, messages_by_task

__all__ = ["ImportMode", "ImportSummary", "Transfer"]

logger = logging.getLogger("taskline.service")


class Transfer:
    """Reading a bundle to export, and importing a JSON export."""

    def __init__(self, database: Database, writes: Writes) -> None:
        self.database = database
        self.writes = writes

    async def bundle(
        self, *, query: TaskQuery | None = None, task_id: str | None = None
    ) -> ExportBundle:
        """The tasks to export (one task, or all matching ``query``) with their agents and
        messages (all agents for a board export, the assigned one for a task)."""
        async with self.database.read() as session:
            store = TaskStore(session)
            tasks = [await store.get(task_id)] if task_id else await store.all(query)
            referenced = {t.assigned_agent_id for t in tasks if t.assigned_agent_id}
            agents = [
                a for a in await AgentStore(session).list() if a.id in referenced or not task_id
            ]
            messages = await messages_by_task(session, [t.id for t in tasks])
        return ExportBundle(
            tasks=[_writable_task(t) for t in tasks],
            agents=[_writable_agent(a) for a in agents],
            messages=messages,
            exported_at=utc_now(),
        )

    async def import_board(
        self, document: ExportDocument, *, mode: ImportMode, actor: Actor
    ) -> ImportSummary:
        """Restore the tasks, agents and messages of a JSON export exactly (ids and times
        kept), all or nothing (see :func:`taskline.store.transfer.import_board`). Importing
        takes the ``import`` action; ``replace`` overwrites tasks, and takes the admin's."""
        require(actor, Action.IMPORT_REPLACE if mode == ImportMode.REPLACE else Action.IMPORT)
        async with self.writes.change() as change:
            return await import_board(
                change.session,
                document.tasks,
                document.agents,
                {task.id: task.messages for task in document.tasks},
                mode=mode,
            )


def _writable_task(task: Task) -> Task:
    """``task`` with the parts of its result no encoder writes (stored before the bounds of
    :mod:`taskline.domain.json_bounds`) replaced by markers, so every format can write it."""
    result, problems = readable(task.result)
    if not problems:
        return task
    logger.warning("task %s: its result holds values no encoder writes: %s", task.id, problems)
    return task.model_copy(update={"result": result})


def _writable_agent(agent: Agent) -> Agent:
    metadata, problems = readable(agent.metadata)
    if not problems:
        return agent
    logger.warning("agent %s: its metadata holds values no encoder writes: %s", agent.id, problems)
    return agent.model_copy(update={"metadata": metadata})
