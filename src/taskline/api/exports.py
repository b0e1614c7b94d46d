"""Export (json, csv, md, zip) and import (the JSON export) routes."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.paths import TaskId
from taskline.api.tasks import STATUS_FILTER_SCHEMA, parse_task_query
from taskline.domain.errors import UnsupportedFormatError
from taskline.export import SUPPORTED_FORMATS, ExportFile, parse_json_export, render
from taskline.service.transfer import ImportMode

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tasks", tags=["export"])

_FORMATS_TEXT = ", ".join(SUPPORTED_FORMATS)


def _download(file: ExportFile) -> Response:
    return Response(
        content=file.content,
        media_type=file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{file.filename}"'},
    )


def _check_format(format: str) -> None:
    """Refuse an unknown format before any work is done."""
    if format not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(format, SUPPORTED_FORMATS)


@router.get(
    "/export/{format}",
    summary="Export all tasks",
    description=f"Formats: {_FORMATS_TEXT}. Accepts the list filters (status, agent, tag, q).",
    response_class=Response,
)
async def export_all(
    format: str,
    services: ServicesDep,
    status_filter: Annotated[
        list[str], Query(alias="status", json_schema_extra=STATUS_FILTER_SCHEMA)
    ] = [],  # noqa: B006
    agent: str | None = None,
    tag: str | None = None,
    q: str | None = None,
) -> Response:
    _check_format(format)
    query = parse_task_query(status_filter, agent, tag, q, "created_at", 1, 0)
    bundle = await services.transfer.bundle(query=query)
    return _download(render(bundle, format, scope="tasks"))


@router.get(
    "/{task_id:id}/export/{format}",
    summary="Export one task",
    description=f"Formats: {_FORMATS_TEXT}.",
    response_class=Response,
)
async def export_one(task_id: TaskId, format: str, services: ServicesDep) -> Response:
    _check_format(format)
    bundle = await services.transfer.bundle(task_id=task_id)
    return _download(render(bundle, format, scope=task_id))


@router.post("/import", summary="Import a JSON export")
async def import_tasks(
    request: Request,
    services: ServicesDep,
    actor: ActorDep,
    mode: Annotated[
        ImportMode, Query(description="create: refuse existing ids; replace: overwrite them.")
    ] = ImportMode.CREATE,
) -> dict[str, int]:
    """Restore the tasks, agents and messages of a JSON export exactly (ids and times kept)."""
    document = parse_json_export(await request.body())
    summary = await services.transfer.import_board(document, mode=mode, actor=actor)
    return {
        "tasks": summary.tasks,
        "agents": summary.agents,
        "messages": summary.messages,
        "replaced": summary.replaced,
    }
