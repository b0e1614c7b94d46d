"""Section and subtask routes, nested under their task."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.domain.models import (
    Reorder,
    Section,
    SectionCreate,
    SectionPatch,
    Subtask,
    SubtaskCreate,
    SubtaskPatch,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tasks/{task_id}", tags=["sections"], route_class=JsonBodyRoute)


Position = Annotated[
    int | None, Query(ge=0, description="Where to insert (0 = first); default last.")
]


@router.post("/sections", response_model=Section, status_code=status.HTTP_201_CREATED)
async def add_section(
    task_id: str,
    body: SectionCreate,
    services: ServicesDep,
    actor: ActorDep,
    position: Position = None,
) -> Section:
    """Add a section (optionally with subtasks) to the task."""
    return await services.tasks.add_section(task_id, body, position=position, actor=actor)


@router.patch("/sections/{section_id}", response_model=Section)
async def rename_section(
    task_id: str, section_id: str, body: SectionPatch, services: ServicesDep, actor: ActorDep
) -> Section:
    return await services.tasks.rename_section(task_id, section_id, body.title, actor=actor)


@router.delete("/sections/{section_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_section(
    task_id: str, section_id: str, services: ServicesDep, actor: ActorDep
) -> Response:
    """Delete a section and its subtasks."""
    await services.tasks.delete_section(task_id, section_id, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/sections/order", response_model=list[Section])
async def reorder_sections(
    task_id: str, body: Reorder, services: ServicesDep, actor: ActorDep
) -> list[Section]:
    """Reorder the task's sections; ``ids`` must name each section exactly once."""
    return await services.tasks.reorder_sections(task_id, body.ids, actor=actor)


@router.post(
    "/sections/{section_id}/subtasks", response_model=Subtask, status_code=status.HTTP_201_CREATED
)
async def add_subtask(
    task_id: str,
    section_id: str,
    body: SubtaskCreate,
    services: ServicesDep,
    actor: ActorDep,
    position: Position = None,
) -> Subtask:
    return await services.tasks.add_subtask(
        task_id, section_id, body, position=position, actor=actor
    )


@router.put("/sections/{section_id}/subtasks/order", response_model=list[Subtask])
async def reorder_subtasks(
    task_id: str, section_id: str, body: Reorder, services: ServicesDep, actor: ActorDep
) -> list[Subtask]:
    """Reorder a section's subtasks; ``ids`` must name each subtask exactly once."""
    return await services.tasks.reorder_subtasks(task_id, section_id, body.ids, actor=actor)


@router.patch("/subtasks/{subtask_id}", response_model=Subtask)
async def update_subtask(
    task_id: str, subtask_id: str, body: SubtaskPatch, services: ServicesDep, actor: ActorDep
) -> Subtask:
    """Rename, tick, annotate, or move (``section_id``) a subtask."""
    return await services.tasks.update_subtask(
        task_id,
        subtask_id,
        title=body.title,
        done=body.done,
        notes=body.notes,
        section_id=body.section_id,
        actor=actor,
    )


@router.post("/subtasks/{subtask_id}/toggle", response_model=Subtask)
async def toggle_subtask(
    task_id: str, subtask_id: str, services: ServicesDep, actor: ActorDep
) -> Subtask:
    """Flip the subtask's ``done``."""
    return await services.tasks.toggle_subtask(task_id, subtask_id, actor=actor)


@router.delete("/subtasks/{subtask_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subtask(
    task_id: str, subtask_id: str, services: ServicesDep, actor: ActorDep
) -> Response:
    await services.tasks.delete_subtask(task_id, subtask_id, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
