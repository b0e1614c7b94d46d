"""Section and subtask routes, nested under their task."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from taskline.api.deps import DatabaseDep
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

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tasks/{task_id}", tags=["sections"])

Position = Annotated[
    int | None, Query(ge=0, description="Where to insert (0 = first); default last.")
]


@router.post("/sections", response_model=Section, status_code=status.HTTP_201_CREATED)
async def add_section(
    task_id: str, body: SectionCreate, database: DatabaseDep, position: Position = None
) -> Section:
    """Add a section (optionally with subtasks) to the task."""
    async with database.write() as session:
        return await SectionStore(session).add_section(task_id, body, position=position)


@router.patch("/sections/{section_id}", response_model=Section)
async def rename_section(
    task_id: str, section_id: str, body: SectionPatch, database: DatabaseDep
) -> Section:
    async with database.write() as session:
        return await SectionStore(session).rename_section(task_id, section_id, body.title)


@router.delete("/sections/{section_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_section(task_id: str, section_id: str, database: DatabaseDep) -> Response:
    """Delete a section and its subtasks."""
    async with database.write() as session:
        await SectionStore(session).delete_section(task_id, section_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/sections/order", response_model=list[Section])
async def reorder_sections(task_id: str, body: Reorder, database: DatabaseDep) -> list[Section]:
    """Reorder the task's sections; ``ids`` must name each section exactly once."""
    async with database.write() as session:
        return await SectionStore(session).reorder_sections(task_id, body.ids)


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
    task_id: str, section_id: str, body: Reorder, database: DatabaseDep
) -> list[Subtask]:
    """Reorder a section's subtasks; ``ids`` must name each subtask exactly once."""
    async with database.write() as session:
        return await SectionStore(session).reorder_subtasks(task_id, section_id, body.ids)


@router.patch("/subtasks/{subtask_id}", response_model=Subtask)
async def update_subtask(
    task_id: str, subtask_id: str, body: SubtaskPatch, database: DatabaseDep
) -> Subtask:
    """Rename, tick, annotate, or move (``section_id``) a subtask."""
    async with database.write() as session:
        return await SectionStore(session).update_subtask(
            task_id,
            subtask_id,
            title=body.title,
            done=body.done,
            notes=body.notes,
            section_id=body.section_id,
        )


@router.post("/subtasks/{subtask_id}/toggle", response_model=Subtask)
async def toggle_subtask(task_id: str, subtask_id: str, database: DatabaseDep) -> Subtask:
    """Flip the subtask's ``done``."""
    async with database.write() as session:
        return await SectionStore(session).toggle_subtask(task_id, subtask_id)


@router.delete("/subtasks/{subtask_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subtask(task_id: str, subtask_id: str, database: DatabaseDep) -> Response:
    async with database.write() as session:
        await SectionStore(session).delete_subtask(task_id, subtask_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
