"""Service routes: API information and health."""

from typing import Any

from fastapi import APIRouter, Request

from taskline import __version__
from taskline.api.deps import DatabaseDep

__all__ = ["router"]

router = APIRouter(tags=["meta"])


@router.get("/", summary="API information")
async def api_info(request: Request) -> dict[str, Any]:
    database = request.app.state.database
    return {
        "name": "Taskline",
        "version": __version__,
        "database": database.backend,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/health",
        "api": "/api/v1",
        "endpoints": {
            "tasks": "/api/v1/tasks/",
            "agents": "/api/v1/agents/",
            "export_all": "/api/v1/tasks/export/{format}",
            "export_one": "/api/v1/tasks/{task_id}/export/{format}",
            "import": "/api/v1/tasks/import",
        },
    }


@router.get("/health", summary="Health check (asks the database)")
async def health(database: DatabaseDep) -> dict[str, str]:
    """Answer 200 when the database answers; 503 problem details otherwise."""
    await database.ping()
    return {"status": "ok", "database": database.backend, "version": __version__}
