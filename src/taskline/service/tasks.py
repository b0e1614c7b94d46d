"""Tasks, their sections and subtasks: reading them, and every change made to them, each in
one transaction that also logs what it did (see :mod:`taskline.domain.changes`)."""

from collections.abc import Sequence
from typing import Any

from taskline.domain import changes
from taskline.domain.access import Action, require, require_on_task
from taskline.domain.actors import Actor, Role
from taskline.domain.documents import check_read_only
from taskline.domain.events import WebSocketMessage
from taskline.domain.models import (
    Section,
    SectionCreate,
    Subtask,
    SubtaskCreate,
    Task,
    TaskCreate,
    TaskReplace,
    utc_now,
)
from taskline.domain.preconditions import IfMatch, Versioned
from taskline.domain.queries import TaskQuery
from taskline.service.request_log import cancel_open
from taskline.service.writes import Change, Writes
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.requests import RequestStore
from taskline.store.sections import SectionStore
from taskline.store.tasks import TaskStore

__all__ = ["TaskService"]

#: What the REST API records as the source of the events it logs.
SOURCE = "api"


class TaskService:
    """Reading and changing tasks (the REST API's, the CLI's and the UI's way in)."""

    def __init__(self, database: Database, writes: Writes) -> None:
        self.database = database
        self.writes = writes

    # --- reading ----------------------------------------------------------------------------

    async def page(self, query: TaskQuery) -> dict[str, Any]:
        """One page of tasks as a document (``items``, ``total``, ``limit``, ``offset``)."""
        async with self.database.read() as session:
            return await TaskStore(session).page_document(query)

    async def document(self, task_id: str) -> dict[str, Any]:
        """The task as a document; :class:`NotFoundError` if there is none."""
        async with self.database.read() as session:
            return await TaskStore(session).get_document(task_id)

    async def get(self, task_id: str) -> Task:
        async with self.database.read() as session:
            return await TaskStore(session).get(task_id)

    # --- changing ---------------------------------------------------------------------------

    async def create(
        self, body: TaskCreate, *, actor: Actor, task_id: str | None = None, source: str = SOURCE
    ) -> Task:
        """Create the task and log ``task_created`` in the same transaction."""
        require(actor, Action.EDIT_TASKS)
        async with self.writes.change() as change:
            task = await TaskStore(change.session).create(body, task_id=task_id)
            await change.start(task.id, changes.created(task), actor=actor, source=source)
        return task

    async def replace(
        self, task_id: str, body: TaskReplace, *, actor: Actor, if_match: IfMatch | None = None
    ) -> Task:
        """Replace the fields; logs ``task_updated`` (and the status event if it moved).

        ``if_match`` (and the body's own ``version``, when it has one) must allow the task's
        current version; the body's other read-only fields must be the task's.
        """
        require(actor, Action.EDIT_TASKS)
        if body.version is not None:
            if_match = (if_match or IfMatch(any=True)).and_version(body.version)
        async with self.writes.change() as change:
            store = TaskStore(change.session)
            await store.claim(task_id, if_match)
            before = await store.get(task_id)
            check_read_only(before, body)
            task = await store.replace(task_id, body)
            await _log_change(change, task, before, body.sent_fields(), actor)
        return task

    async def patch(
        self,
        task_id: str,
        fields: dict[str, Any],
        *,
        actor: Actor,
        action: Action = Action.EDIT_TASKS,
        if_match: IfMatch | None = None,
    ) -> Task:
        """Change the given fields; logs ``task_updated`` (and the status event if it moved).
        ``action`` is what the change counts as (pause/resume/cancel: ``control``);
        ``if_match`` must allow the task's current version."""
        require(actor, action)
        async with self.writes.change() as change:
            store = TaskStore(change.session)
            await store.claim(task_id, if_match)
            before = await store.get(task_id)
            task = await store.patch(task_id, fields)
            await _log_change(change, task, before, fields, actor)
        return task

    async def delete(self, task_id: str, *, actor: Actor, if_match: IfMatch | None = None) -> None:
        """Delete the task; its log keeps a final ``task_deleted`` event. ``if_match`` must
        allow the task's current version.

        Its open requests are cancelled first, in the same transaction, by ``actor``
        (``request.cancelled`` logged before ``task_deleted``): whoever waits for one is
        answered at once, and the inbox drops them."""
        require(actor, Action.EDIT_TASKS)
        async with self.writes.change() as change:
            store = TaskStore(change.session)
            if if_match is not None:
                await store.claim(task_id, if_match)
            if await RequestStore(change.session).lock_task(task_id) is not None:
                cancelled = await cancel_open(
                    change.session,
                    task_id,
                    by=str(actor),
                    now=utc_now(),
                    comment="the task was deleted",
                )
                if cancelled:
                    await change.record(task_id, cancelled, actor=actor, source=SOURCE, apply=False)
            await store.delete(task_id)
            await _record(change, task_id, changes.deleted(), actor)

    # --- sections and subtasks --------------------------------------------------------------
    # Each change returns what it changed with the task's new version (its ETag), and takes
    # ``if_match``, which must allow the task's current version: sections and subtasks are
    # part of the task's document and have no version of their own.

    async def add_section(
        self,
        task_id: str,
        body: SectionCreate,
        *,
        position: int | None,
        actor: Actor,
        if_match: IfMatch | None = None,
    ) -> Versioned[Section]:
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            section = await SectionStore(change.session).add_section(
                task_id, body, position=position
            )
            await _structure_changed(change, task_id, actor)
        return Versioned(section, version)

    async def rename_section(
        self,
        task_id: str,
        section_id: str,
        title: str,
        *,
        actor: Actor,
        if_match: IfMatch | None = None,
    ) -> Versioned[Section]:
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            section = await SectionStore(change.session).rename_section(task_id, section_id, title)
            await _structure_changed(change, task_id, actor)
        return Versioned(section, version)

    async def delete_section(
        self, task_id: str, section_id: str, *, actor: Actor, if_match: IfMatch | None = None
    ) -> int:
        """Delete a section and its subtasks; returns the task's new version."""
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            await SectionStore(change.session).delete_section(task_id, section_id)
            await _structure_changed(change, task_id, actor)
        return version

    async def reorder_sections(
        self, task_id: str, ids: Sequence[str], *, actor: Actor, if_match: IfMatch | None = None
    ) -> Versioned[list[Section]]:
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            sections = await SectionStore(change.session).reorder_sections(task_id, ids)
            await _structure_changed(change, task_id, actor)
        return Versioned(sections, version)

    async def add_subtask(
        self,
        task_id: str,
        section_id: str,
        body: SubtaskCreate,
        *,
        position: int | None,
        actor: Actor,
        if_match: IfMatch | None = None,
    ) -> Versioned[Subtask]:
        """Add a subtask (logged as a ``task_updated`` of the task's sections)."""
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            subtask = await SectionStore(change.session).add_subtask(
                task_id, section_id, body, position=position
            )
            await _structure_changed(change, task_id, actor)
        return Versioned(subtask, version)

    async def reorder_subtasks(
        self,
        task_id: str,
        section_id: str,
        ids: Sequence[str],
        *,
        actor: Actor,
        if_match: IfMatch | None = None,
    ) -> Versioned[list[Subtask]]:
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            subtasks = await SectionStore(change.session).reorder_subtasks(task_id, section_id, ids)
            await _structure_changed(change, task_id, actor)
        return Versioned(subtasks, version)

    async def update_subtask(
        self,
        task_id: str,
        subtask_id: str,
        *,
        title: str | None,
        done: bool | None,
        notes: str | None,
        section_id: str | None,
        actor: Actor,
        if_match: IfMatch | None = None,
    ) -> Versioned[Subtask]:
        """Rename, tick, annotate or move (``section_id``) a subtask."""
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            subtask = await SectionStore(change.session).update_subtask(
                task_id, subtask_id, title=title, done=done, notes=notes, section_id=section_id
            )
            await _record(change, task_id, changes.subtask_changed(subtask), actor)
            if section_id is not None:
                await _structure_changed(change, task_id, actor)
        return Versioned(subtask, version)

    async def toggle_subtask(
        self, task_id: str, subtask_id: str, *, actor: Actor, if_match: IfMatch | None = None
    ) -> Versioned[Subtask]:
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            subtask = await SectionStore(change.session).toggle_subtask(task_id, subtask_id)
            await _record(change, task_id, changes.subtask_changed(subtask), actor)
        return Versioned(subtask, version)

    async def delete_subtask(
        self, task_id: str, subtask_id: str, *, actor: Actor, if_match: IfMatch | None = None
    ) -> int:
        """Delete a subtask; returns the task's new version."""
        async with self.writes.change() as change:
            version = await _claim_checklist(change, task_id, actor, if_match)
            await SectionStore(change.session).delete_subtask(task_id, subtask_id)
            await _structure_changed(change, task_id, actor)
        return version


async def _record(change: Change, task_id: str, event: Any, actor: Actor) -> list[WebSocketMessage]:
    """Log one server-made event (a change made already: nothing to apply)."""
    return await change.record(task_id, [event], actor=actor, source=SOURCE, apply=False)


async def _log_change(change: Change, task: Task, before: Task, changed: Any, actor: Actor) -> None:
    events = changes.task_changed(task, before=before, changed=changed)
    await change.record(task.id, events, actor=actor, source=SOURCE, apply=False)


async def _structure_changed(change: Change, task_id: str, actor: Actor) -> None:
    """A section or subtask was added, renamed, moved or removed: log the task's new shape."""
    task = await TaskStore(change.session).get(task_id)
    await _log_change(change, task, task, ["sections"], actor)


async def _claim_checklist(
    change: Change, task_id: str, actor: Actor, if_match: IfMatch | None
) -> int:
    """Check the actor may edit the task's sections and subtasks (people with the role;
    agents on their own tasks only), then claim the task (:meth:`TaskStore.claim`)."""
    if actor.role == Role.AGENT:
        workers = await AgentStore(change.session).workers(task_id)
        require_on_task(actor, Action.EDIT_CHECKLIST, task_id, workers)
    else:
        require(actor, Action.EDIT_CHECKLIST)
    return await TaskStore(change.session).claim(task_id, if_match)
