"""RFC 9457 problem details: every 4xx/5xx body Taskline sends is ``application/problem+json``.

Handlers are registered on base classes, so each branch of the ``TasklineError`` tree maps to
one status here and nowhere else. Unexpected exceptions become a bare 500: the traceback goes
to the server log, never to the client.
"""

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from taskline.domain.errors import PreconditionFailedError, StorageError, TasklineError
from taskline.domain.preconditions import etag
from taskline.domain.problems import PROBLEM_TYPE_BASE, problem_body

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
logger = logging.getLogger("taskline.api")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "Precondition required",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemResponse(Response):
    """A problem details body, serialised with orjson."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """Build a problem+json response; ``extra`` members are added to the body."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def _for_taskline_error(request: Request, exc: TasklineError) -> ProblemResponse:
    if isinstance(exc, StorageError):
        logger.error("storage error on %s %s: %s", request.method, request.url.path, exc.detail)
    body = problem_body(exc, instance=request.url.path)
    # a refused If-Match also says which version is current, as the task's answers do
    headers = {"ETag": etag(exc.current)} if isinstance(exc, PreconditionFailedError) else None
    return ProblemResponse(body, status_code=body["status"], headers=headers)


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


def _for_validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
    errors = [
        {"field": _field_path(error.get("loc", ())), "message": _message(error)}
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return problem_response(
        422, detail, slug="invalid-input", instance=request.url.path, errors=errors
    )


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "json_invalid":
        return "request body is not valid JSON"
    return message.removeprefix("Value error, ")


def _for_http_exception(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        exc.status_code, detail, instance=request.url.path, headers=headers or None
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path.

    Starlette's 405 names the methods of the first route that has the path; a path served by
    several routes (``GET`` and ``POST /api/v1/agents/``, one route each) needs them all.
    """
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def _for_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        "the server failed to handle this request; the error is in the server log",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""
    app.add_exception_handler(TasklineError, _for_taskline_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _for_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _for_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _for_unexpected)
