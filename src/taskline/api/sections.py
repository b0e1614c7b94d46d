"""Section and subtask routes, nested under their task.

Sections and subtasks are parts of their task's document and have no version of their own:
every route here takes the task's ``If-Match`` and answers with the task's new ``ETag``.
"""

from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Response, status

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import SectionId, SubtaskId, TaskId
from taskline.api.preconditions import CONDITIONAL, IfMatchDep, send_etag
from taskline.domain.models import (
    Reorder,
    Section,
    SectionCreate,
    SectionPatch,
    Subtask,
    SubtaskCreate,
    SubtaskPatch,
)
from taskline.domain.preconditions import Versioned

__all__ = ["router"]

T = TypeVar("T")

router = APIRouter(
    prefix="/api/v1/tasks/{task_id:id}", tags=["sections"], route_class=JsonBodyRoute
)


Position = Annotated[
    int | None, Query(ge=0, description="Where to insert (0 = first); default last.")
]


def _tagged(response: Response, changed: Versioned[T]) -> T:
    send_etag(response, changed.version)
    return changed.value


def _no_content(version: int) -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    send_etag(response, version)
    return response


@router.post(
    "/sections", response_model=Section, status_code=status.HTTP_201_CREATED, responses=CONDITIONAL
)
async def add_section(
    task_id: TaskId,
    body: SectionCreate,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
    position: Position = None,
) -> Section:
    """Add a section (optionally with subtasks) to the task."""
    changed = await services.tasks.add_section(
        task_id, body, position=position, actor=actor, if_match=if_match
    )
    return _tagged(response, changed)


@router.patch("/sections/{section_id:id}", response_model=Section, responses=CONDITIONAL)
async def rename_section(
    task_id: TaskId,
    section_id: SectionId,
    body: SectionPatch,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
) -> Section:
    changed = await services.tasks.rename_section(
        task_id, section_id, body.title, actor=actor, if_match=if_match
    )
    return _tagged(response, changed)


@router.delete(
    "/sections/{section_id:id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONDITIONAL
)
async def delete_section(
    task_id: TaskId,
    section_id: SectionId,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
) -> Response:
    """Delete a section and its subtasks."""
    version = await services.tasks.delete_section(
        task_id, section_id, actor=actor, if_match=if_match
    )
    return _no_content(version)


@router.put("/sections/order", response_model=list[Section], responses=CONDITIONAL)
async def reorder_sections(
    task_id: TaskId,
    body: Reorder,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
) -> list[Section]:
    """Reorder the task's sections; ``ids`` must name each section exactly once."""
    changed = await services.tasks.reorder_sections(
        task_id, body.ids, actor=actor, if_match=if_match
    )
    return _tagged(response, changed)


@router.post(
    "/sections/{section_id:id}/subtasks",
    response_model=Subtask,
    status_code=status.HTTP_201_CREATED,
    responses=CONDITIONAL,
)
async def add_subtask(
    task_id: TaskId,
    section_id: SectionId,
    body: SubtaskCreate,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
    position: Position = None,
) -> Subtask:
    changed = await services.tasks.add_subtask(
        task_id, section_id, body, position=position, actor=actor, if_match=if_match
    )
    return _tagged(response, changed)


@router.put(
    "/sections/{section_id:id}/subtasks/order", response_model=list[Subtask], responses=CONDITIONAL
)
async def reorder_subtasks(
    task_id: TaskId,
    section_id: SectionId,
    body: Reorder,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
) -> list[Subtask]:
    """Reorder a section's subtasks; ``ids`` must name each subtask exactly once."""
    changed = await services.tasks.reorder_subtasks(
        task_id, section_id, body.ids, actor=actor, if_match=if_match
    )
    return _tagged(response, changed)


@router.patch("/subtasks/{subtask_id:id}", response_model=Subtask, responses=CONDITIONAL)
async def update_subtask(
    task_id: TaskId,
    subtask_id: SubtaskId,
    body: SubtaskPatch,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
) -> Subtask:
    """Rename, tick, annotate, or move (``section_id``) a subtask."""
    changed = await services.tasks.update_subtask(
        task_id,
        subtask_id,
        title=body.title,
        done=body.done,
        notes=body.notes,
        section_id=body.section_id,
        actor=actor,
        if_match=if_match,
    )
    return _tagged(response, changed)


@router.post("/subtasks/{subtask_id:id}/toggle", response_model=Subtask, responses=CONDITIONAL)
async def toggle_subtask(
    task_id: TaskId,
    subtask_id: SubtaskId,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
    response: Response,
) -> Subtask:
    """Flip the subtask's ``done``."""
    changed = await services.tasks.toggle_subtask(
        task_id, subtask_id, actor=actor, if_match=if_match
    )
    return _tagged(response, changed)


@router.delete(
    "/subtasks/{subtask_id:id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONDITIONAL
)
async def delete_subtask(
    task_id: TaskId,
    subtask_id: SubtaskId,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
) -> Response:
    version = await services.tasks.delete_subtask(
        task_id, subtask_id, actor=actor, if_match=if_match
    )
    return _no_content(version)
