"""Service routes: API information and health.

``GET /`` answers two audiences: a browser (its ``Accept`` header prefers ``text/html``) gets
the web UI's page; anyone else (``Accept: */*``, ``application/json``) gets the API
information as JSON. The api layer does not import the UI (it sits above us): it looks the
UI's page route up by name, answers the request as that route would (no redirect), and
answers JSON when the application has no UI.
"""

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.routing import NoMatchFound
from starlette.types import Message, Receive, Scope, Send

from taskline import __version__
from taskline.api.deps import ServicesDep

__all__ = ["prefers_html", "router"]

router = APIRouter(tags=["meta"])

#: Name of the route that serves the web UI's page (``taskline.web.routes``).
WEB_INDEX_ROUTE = "web_index"


def _quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type``: its most specific matching range wins."""
    kind = media_type.split("/", 1)[0]
    best_rank, best_q = -1, 0.0
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media_range = parts[0].lower()
        q = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media_range == media_type:
            rank = 2
        elif media_range == f"{kind}/*":
            rank = 1
        elif media_range == "*/*":
            rank = 0
        else:
            continue
        if rank > best_rank:
            best_rank, best_q = rank, q
    return best_q


def prefers_html(accept: str | None) -> bool:
    """True when ``accept`` ranks ``text/html`` above ``application/json`` (a browser).

    ``*/*`` or no header ranks both alike: that is an API client, so the answer is False.
    """
    if not accept:
        return False
    return _quality(accept, "text/html") > _quality(accept, "application/json")


class _Rewrite(Response):
    """Answer the request as the application answers ``path`` (an internal rewrite: same
    method and headers, no redirect), adding ``Vary: Accept``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("root_path", "") + self.path

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"vary", b"Accept")]
                message = {**message, "headers": headers}
            await send(message)

        rewritten = {**scope, "path": path, "raw_path": path.encode()}
        await scope["app"](rewritten, receive, send_with_vary)


def _web_index_path(request: Request) -> str | None:
    """The path of the UI's page, or None when the application has no UI."""
    try:
        return str(request.app.url_path_for(WEB_INDEX_ROUTE))
    except NoMatchFound:
        return None


@router.get("/", summary="API information", response_model=dict[str, Any])
async def api_info(request: Request, response: Response, services: ServicesDep) -> Any:
    """The API's name, version, backend and where things are; browsers go to the UI."""
    response.headers["Vary"] = "Accept"
    if prefers_html(request.headers.get("accept")):
        page = _web_index_path(request)
        if page is not None:
            return _Rewrite(page)
    return {
        "name": "Taskline",
        "version": __version__,
        "database": services.backend,
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


@router.get(
    "/health",
    summary="Health check (asks the database; reports Redis)",
    description=(
        "200 when the database answers; 503 problem details when it does not. "
        '`status` is `"ok"`, or `"degraded"` while an accelerator is down: `degraded` '
        'then lists it (`["redis"]` while this process has lost its Redis subscription, '
        "with `TASKLINE_REDIS_URL` set). Degraded is still 200: publishing keeps committing "
        "to the database and other processes catch up from the log; the status returns to "
        '`"ok"` once Redis answers again. `node` names the process that answered.'
    ),
)
async def health(services: ServicesDep) -> dict[str, Any]:
    """Answer 200 when the database answers (``degraded`` names Redis while it is down);
    503 problem details otherwise.

    ``node`` names the process that answered (one of several behind a port or a proxy).
    """
    await services.ping()
    degraded = services.degraded()
    return {
        "status": "degraded" if degraded else "ok",
        "degraded": degraded,
        "database": services.backend,
        "version": __version__,
        "node": services.node,
    }
