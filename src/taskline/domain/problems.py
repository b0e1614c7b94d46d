"""RFC 9457 problem details of Taskline's errors: one mapping from each branch of the
:class:`~taskline.domain.errors.TasklineError` tree to a status and a problem type, shared by
HTTP responses and the agent socket's ``nack`` frames."""

from typing import Any

from taskline.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    InvalidTransitionError,
    LeaseConflictError,
    NotAuthenticatedError,
    NotFoundError,
    PreconditionFailedError,
    PreconditionRequiredError,
    StorageError,
    TasklineError,
    UnsupportedFormatError,
)

__all__ = ["PROBLEM_TYPE_BASE", "problem_body", "status_of"]

PROBLEM_TYPE_BASE = "https://taskline.dev/problems/"

#: The first entry whose class the error is an instance of decides (most specific first).
_STATUS_BY_ERROR: list[tuple[type[TasklineError], int, str]] = [
    (NotAuthenticatedError, 401, "unauthenticated"),
    (ForbiddenError, 403, "forbidden"),
    (NotFoundError, 404, "not-found"),
    (InvalidTransitionError, 409, "invalid-transition"),
    (AlreadyExistsError, 409, "already-exists"),
    (LeaseConflictError, 409, "lease-conflict"),
    (PreconditionFailedError, 412, "precondition-failed"),
    (PreconditionRequiredError, 428, "precondition-required"),
    (ConflictError, 409, "conflict"),
    (InvalidInputError, 422, "invalid-input"),
    (UnsupportedFormatError, 400, "unsupported-format"),
    (StorageError, 503, "storage-unavailable"),
    (TasklineError, 400, "bad-request"),
]


def status_of(exc: TasklineError) -> tuple[int, str]:
    """The HTTP status and problem type slug of an error."""
    return next((status, slug) for kind, status, slug in _STATUS_BY_ERROR if isinstance(exc, kind))


def problem_body(exc: TasklineError, *, instance: str | None = None) -> dict[str, Any]:
    """The problem details of one of our errors (sent over HTTP and on WebSockets)."""
    status, slug = status_of(exc)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": exc.title,
        "status": status,
        "detail": exc.detail,
    }
    if instance:
        body["instance"] = instance
    if isinstance(exc, InvalidTransitionError):
        body.update(current=exc.current, requested=exc.requested, allowed=exc.allowed)
    elif isinstance(exc, LeaseConflictError):
        body.update(
            task_id=exc.task_id, holder=exc.holder, lease_token=exc.token, task_status=exc.status
        )
    elif isinstance(exc, AlreadyExistsError):
        body["ids"] = exc.resource_ids
    elif isinstance(exc, PreconditionFailedError):
        body["current_version"] = exc.current
    elif isinstance(exc, UnsupportedFormatError):
        body["supported"] = exc.supported
    elif isinstance(exc, InvalidInputError) and exc.field:
        body["errors"] = [{"field": exc.field, "message": exc.detail}]
    return body
