"""The errors the SDK raises. Transport and HTTP errors are translated; none of httpx leaks out.

::

    TasklineClientError            base of everything below
    ├── ClientClosedError          the client was used after close() (also a RuntimeError)
    ├── ServerUnreachableError     connection refused, DNS failure, or no answer in time
    ├── UnexpectedResponseError    a 2xx answer the SDK cannot read (not the expected JSON)
    └── ApiError                   the server answered with an RFC 9457 problem (4xx/5xx)
        ├── NotFound               404: the task, agent or route does not exist
        ├── Conflict               409: an invalid status transition, an id that is taken
        └── InvalidRequest         400, 413, 422: the request itself is wrong

"The request failed" (``ServerUnreachableError``) and "the server said no" (``ApiError``) are
separate branches, so callers can retry the first and report the second.
"""

from typing import Any

__all__ = [
    "ApiError",
    "ClientClosedError",
    "Conflict",
    "InvalidRequest",
    "NotFound",
    "ServerUnreachableError",
    "TasklineClientError",
    "UnexpectedResponseError",
]


class TasklineClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class ClientClosedError(TasklineClientError, RuntimeError):
    """The client was used after :meth:`~taskline.sdk.Client.close`; clients cannot reopen."""


class ServerUnreachableError(TasklineClientError):
    """No HTTP answer came back from ``url``: refused, unresolvable, or timed out.

    ``reason`` is a short description of the failure; ``timed_out`` tells a server that was
    too slow (it may still have applied the request) from one that could not be reached at
    all. The httpx error is the ``__cause__``.
    """

    def __init__(self, url: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"cannot reach the Taskline server at {url}: {reason}")
        self.url = url
        self.reason = reason
        self.timed_out = timed_out


class UnexpectedResponseError(TasklineClientError):
    """A successful answer whose body is not what the endpoint documents (wrong server?)."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        super().__init__(f"unexpected response to {method} {url}: {reason}")
        self.method = method
        self.url = url
        self.reason = reason


class ApiError(TasklineClientError):
    """The server refused the request with problem details (RFC 9457).

    Attributes:
        status: the HTTP status code.
        title: the problem's short, generic title ("Not found").
        detail: the explanation for this occurrence ("task 'task_x' does not exist").
        errors: per-field errors of a 422, ``[{"field": ..., "message": ...}]``; else empty.
        problem: the whole problem body, including extension members such as ``allowed``
            (the legal next statuses of a refused transition). When the server sent no
            problem JSON, a body is synthesised from the status line.
    """

    def __init__(self, problem: dict[str, Any]) -> None:
        self.problem = problem
        self.status = int(problem.get("status") or 0)
        self.title = str(problem.get("title") or "Error")
        self.detail = str(problem.get("detail") or self.title)
        raw_errors = problem.get("errors")
        self.errors: list[dict[str, str]] = [
            {"field": str(e.get("field", "")), "message": str(e.get("message", ""))}
            for e in (raw_errors if isinstance(raw_errors, list) else [])
            if isinstance(e, dict)
        ]
        super().__init__(f"{self.detail} ({self.status})")


class NotFound(ApiError):
    """404: the resource named in the request does not exist."""


class Conflict(ApiError):
    """409: the request contradicts the current state.

    For a refused status change, ``problem["allowed"]`` lists the statuses the task may move to.
    """

    @property
    def allowed(self) -> list[str]:
        """The statuses allowed from the current one (empty unless a transition was refused)."""
        allowed = self.problem.get("allowed")
        return [str(s) for s in allowed] if isinstance(allowed, list) else []


class InvalidRequest(ApiError):
    """400, 413 or 422: malformed, too large, or semantically invalid input."""
