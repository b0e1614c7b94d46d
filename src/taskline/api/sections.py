"""Section and subtask routes, nested under their task."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.api.deps import BusDep, DatabaseDep
from taskline.api.recording import record, record_task_change
from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.domain.models import (
    Reorder,
    Section,
    SectionCreate,
    SectionPatch,
    Subtask,
    SubtaskCreate,
    SubtaskPatch,
)
from taskline.store.sections import SectionStore
from taskline.store.tasks import TaskStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tasks/{task_id}", tags=["sections"])


async def _structure_changed(session: AsyncSession, task_id: str) -> list[WebSocketMessage]:
    task = await TaskStore(session).get(task_id)
    return await record_task_change(session, task, before=task, changed=["sections"])


async def _subtask_changed(
    session: AsyncSession, task_id: str, subtask: Subtask
) -> list[WebSocketMessage]:
    data = {"subtask_id": subtask.id, "done": subtask.done, "title": subtask.title}
    return await record(session, task_id, WebSocketEventType.SUBTASK_UPDATED, data)


Position = Annotated[
    int | None, Query(ge=0, description="Where to insert (0 = first); default last.")
]


@router.post("/sections", response_model=Section, status_code=status.HTTP_201_CREATED)
async def add_section(
    task_id: str,
    body: SectionCreate,
    database: DatabaseDep,
    bus: BusDep,
    position: Position = None,
) -> Section:
    """Add a section (optionally with subtasks) to the task."""
    async with database.write() as session:
        section = await SectionStore(session).add_section(task_id, body, position=position)
        events = await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return section


@router.patch("/sections/{section_id}", response_model=Section)
async def rename_section(
    task_id: str, section_id: str, body: SectionPatch, database: DatabaseDep, bus: BusDep
) -> Section:
    async with database.write() as session:
        section = await SectionStore(session).rename_section(task_id, section_id, body.title)
        events = await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return section


@router.delete("/sections/{section_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_section(
    task_id: str, section_id: str, database: DatabaseDep, bus: BusDep
) -> Response:
    """Delete a section and its subtasks."""
    async with database.write() as session:
        await SectionStore(session).delete_section(task_id, section_id)
        events = await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/sections/order", response_model=list[Section])
async def reorder_sections(
    task_id: str, body: Reorder, database: DatabaseDep, bus: BusDep
) -> list[Section]:
    """Reorder the task's sections; ``ids`` must name each section exactly once."""
    async with database.write() as session:
        sections = await SectionStore(session).reorder_sections(task_id, body.ids)
        events = await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return sections


@router.post(
    "/sections/{section_id}/subtasks", response_model=Subtask, status_code=status.HTTP_201_CREATED
)
async def add_subtask(
    task_id: str,
    section_id: str,
    body: SubtaskCreate,
    database: DatabaseDep,
    position: Position = None,
) -> Subtask:
    async with database.write() as session:
        return await SectionStore(session).add_subtask(task_id, section_id, body, position=position)


@router.put("/sections/{section_id}/subtasks/order", response_model=list[Subtask])
async def reorder_subtasks(
    task_id: str, section_id: str, body: Reorder, database: DatabaseDep, bus: BusDep
) -> list[Subtask]:
    """Reorder a section's subtasks; ``ids`` must name each subtask exactly once."""
    async with database.write() as session:
        subtasks = await SectionStore(session).reorder_subtasks(task_id, section_id, body.ids)
        events = await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return subtasks


@router.patch("/subtasks/{subtask_id}", response_model=Subtask)
async def update_subtask(
    task_id: str, subtask_id: str, body: SubtaskPatch, database: DatabaseDep, bus: BusDep
) -> Subtask:
    """Rename, tick, annotate, or move (``section_id``) a subtask."""
    async with database.write() as session:
        subtask = await SectionStore(session).update_subtask(
            task_id,
            subtask_id,
            title=body.title,
            done=body.done,
            notes=body.notes,
            section_id=body.section_id,
        )
        events = await _subtask_changed(session, task_id, subtask)
        if body.section_id is not None:
            events += await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return subtask


@router.post("/subtasks/{subtask_id}/toggle", response_model=Subtask)
async def toggle_subtask(
    task_id: str, subtask_id: str, database: DatabaseDep, bus: BusDep
) -> Subtask:
    """Flip the subtask's ``done``."""
    async with database.write() as session:
        subtask = await SectionStore(session).toggle_subtask(task_id, subtask_id)
        events = await _subtask_changed(session, task_id, subtask)
    await bus.dispatch(events)
    return subtask


@router.delete("/subtasks/{subtask_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subtask(
    task_id: str, subtask_id: str, database: DatabaseDep, bus: BusDep
) -> Response:
    async with database.write() as session:
        await SectionStore(session).delete_subtask(task_id, subtask_id)
        events = await _structure_changed(session, task_id)
    await bus.dispatch(events)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
