"""``create_app(settings)``: builds the database handle and wires the routers.

No module-level state: every call returns an independent application, so tests can run
several side by side.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from taskline import __version__
from taskline.api import agents, exports, messages, meta, sections, tasks
from taskline.api.body_limit import BodySizeLimit
from taskline.api.problems import install_problem_handlers
from taskline.demo import seed_demo_board
from taskline.settings import Settings
from taskline.store.database import Database

__all__ = ["create_app"]

logger = logging.getLogger("taskline")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return a Taskline application for ``settings`` (default: from the environment).

    At start-up it applies migrations (unless ``migrate_on_start`` is off) and, with
    ``seed_demo``, fills an empty board with sample tasks. At shutdown it closes the pool.
    """
    settings = settings or Settings()
    database = Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await database.migrate()
        if settings.seed_demo:
            created = await seed_demo_board(database)
            if created:
                logger.info("created %d sample tasks", created)
        try:
            yield
        finally:
            await database.dispose()

    app = FastAPI(
        title="Taskline",
        version=__version__,
        summary="A self-hosted hub where AI agents and people work on the same tasks, live.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # exports first: its fixed paths (/tasks/export/..., /tasks/import) must win over /{task_id}
    for module in (meta, exports, tasks, sections, messages, agents):
        app.include_router(module.router)
    return app
