"""The error tree of Taskline. The ``api`` layer maps each branch to one HTTP status.

::

    TasklineError
    ├── NotAuthenticatedError    (401) no credentials, or credentials the server refuses
    ├── ForbiddenError           (403) the caller is known but may not do this
    ├── NotFoundError            (404) a task, agent, section or subtask id that does not exist
    ├── ConflictError            (409) the request contradicts the current state
    │   ├── InvalidTransitionError     a status change the state machine refuses
    │   ├── AlreadyExistsError         an id that is taken (for example on import)
    │   ├── LeaseConflictError         a write by an agent that does not hold the task's lease
    │   └── PreconditionFailedError  (412) If-Match names a version that is not current
    ├── PreconditionRequiredError (428) a change without If-Match where it is required
    ├── InvalidInputError        (422) well-formed JSON whose content is wrong
    ├── UnsupportedFormatError   (400) an export format Taskline does not write
    └── StorageError             (503) the database failed or is unreachable
"""

from collections.abc import Sequence

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "InvalidTransitionError",
    "LeaseConflictError",
    "NotAuthenticatedError",
    "NotFoundError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "StorageError",
    "TasklineError",
    "UnsupportedFormatError",
]


class TasklineError(Exception):
    """Base of every error Taskline raises on purpose."""

    title = "Taskline error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotAuthenticatedError(TasklineError):
    """The request carries no credentials, or ones that are unknown, expired or revoked."""

    title = "Unauthorized"


class ForbiddenError(TasklineError):
    """The caller is known, but its role (or the task's assignment) does not allow this."""

    title = "Forbidden"


class NotFoundError(TasklineError):
    """A resource named in the request does not exist."""

    title = "Not found"

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"{kind} {resource_id!r} does not exist")
        self.kind = kind
        self.resource_id = resource_id


class ConflictError(TasklineError):
    """The request is valid but contradicts the current state."""

    title = "Conflict"


class InvalidTransitionError(ConflictError):
    """A status change that the task state machine does not allow."""

    title = "Invalid status transition"

    def __init__(self, task_id: str, current: str, requested: str, allowed: Sequence[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"task {task_id!r} cannot go from {current!r} to {requested!r}; "
            f"allowed from {current!r}: {allowed_text}"
        )
        self.task_id = task_id
        self.current = current
        self.requested = requested
        self.allowed = list(allowed)


class AlreadyExistsError(ConflictError):
    """An identifier that is already taken."""

    title = "Already exists"

    def __init__(self, kind: str, resource_ids: Sequence[str]) -> None:
        shown = ", ".join(repr(i) for i in resource_ids[:10])
        more = f" and {len(resource_ids) - 10} more" if len(resource_ids) > 10 else ""
        super().__init__(f"{kind} already exist: {shown}{more}")
        self.kind = kind
        self.resource_ids = list(resource_ids)


class LeaseConflictError(ConflictError):
    """A write (or a renewal, a release) by an agent that does not hold the task's lease: it
    expired, was taken away, or another agent holds it. ``holder`` is the agent holding the
    task now (None: nobody, the task went back to pending), ``token`` its fencing token."""

    title = "Lease conflict"

    def __init__(
        self, task_id: str, detail: str, *, holder: str | None, token: int, status: str
    ) -> None:
        super().__init__(detail)
        self.task_id = task_id
        self.holder = holder
        self.token = token
        self.status = status


class PreconditionFailedError(ConflictError):
    """A change made from a version of the resource that is no longer the current one: it
    changed since the client read it (``If-Match``, or a replaced document's ``version``)."""

    title = "Precondition failed"

    def __init__(self, kind: str, resource_id: str, *, current: int, required: str) -> None:
        super().__init__(
            f"{kind} {resource_id!r} changed since it was read: it is at version {current}, "
            f"the request required {required}; read it again and redo the change"
        )
        self.kind = kind
        self.resource_id = resource_id
        self.current = current


class PreconditionRequiredError(TasklineError):
    """The server requires changes to be conditional (``If-Match``) and this one is not."""

    title = "Precondition required"


class InvalidInputError(TasklineError):
    """Content that parses but is wrong; ``field`` names the offending field when known."""

    title = "Invalid input"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class UnsupportedFormatError(TasklineError):
    """An export format that Taskline does not write."""

    title = "Unsupported format"

    def __init__(self, requested: str, supported: Sequence[str]) -> None:
        super().__init__(
            f"format {requested!r} is not supported; supported formats: {', '.join(supported)}"
        )
        self.requested = requested
        self.supported = list(supported)


class StorageError(TasklineError):
    """The database failed or could not be reached; the driver's error is the ``__cause__``."""

    title = "Storage unavailable"
