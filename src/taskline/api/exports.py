"""Export (json, csv, md, zip) and import (the JSON export) routes."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from taskline.api.deps import DatabaseDep
from taskline.api.tasks import parse_task_query
from taskline.domain.errors import UnsupportedFormatError
from taskline.domain.models import utc_now
from taskline.domain.queries import TaskQuery
from taskline.export import SUPPORTED_FORMATS, ExportBundle, ExportFile, parse_json_export, render
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.tasks import TaskStore
from taskline.store.transfer import ImportMode, import_board, messages_by_task

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


async def _bundle(
    database: Database, *, query: TaskQuery | None = None, task_id: str | None = None
) -> ExportBundle:
    """Read the tasks to export (one task, or all matching ``query``) with their agents."""
    async with database.read() as session:
        store = TaskStore(session)
        tasks = [await store.get(task_id)] if task_id else await store.all(query)
        referenced = {t.assigned_agent_id for t in tasks if t.assigned_agent_id}
        agents = [a for a in await AgentStore(session).list() if a.id in referenced or not task_id]
        messages = await messages_by_task(session, [t.id for t in tasks])
    return ExportBundle(tasks=tasks, agents=agents, messages=messages, exported_at=utc_now())


@router.get(
    "/export/{format}",
    summary="Export all tasks",
    description=f"Formats: {_FORMATS_TEXT}. Accepts the list filters (status, agent, tag, q).",
    response_class=Response,
)
async def export_all(
    format: str,
    database: DatabaseDep,
    status_filter: Annotated[list[str], Query(alias="status")] = [],  # noqa: B006
    agent: str | None = None,
    tag: str | None = None,
    q: str | None = None,
) -> Response:
    _check_format(format)
    query = parse_task_query(status_filter, agent, tag, q, "created_at", 1, 0)
    bundle = await _bundle(database, query=query)
    return _download(render(bundle, format, scope="tasks"))


@router.get(
    "/{task_id}/export/{format}",
    summary="Export one task",
    description=f"Formats: {_FORMATS_TEXT}.",
    response_class=Response,
)
async def export_one(task_id: str, format: str, database: DatabaseDep) -> Response:
    _check_format(format)
    bundle = await _bundle(database, task_id=task_id)
    return _download(render(bundle, format, scope=task_id))


@router.post("/import", summary="Import a JSON export")
async def import_tasks(
    request: Request,
    database: DatabaseDep,
    mode: Annotated[
        ImportMode, Query(description="create: refuse existing ids; replace: overwrite them.")
    ] = ImportMode.CREATE,
) -> dict[str, int]:
    """Restore the tasks, agents and messages of a JSON export exactly (ids and times kept)."""
    document = parse_json_export(await request.body())
    async with database.write() as session:
        summary = await import_board(
            session,
            document.tasks,
            document.agents,
            {task.id: task.messages for task in document.tasks},
            mode=mode,
        )
    return {
        "tasks": summary.tasks,
        "agents": summary.agents,
        "messages": summary.messages,
        "replaced": summary.replaced,
    }
