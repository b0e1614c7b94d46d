"""The errors the SDK raises. Transport and HTTP errors are translated; none of httpx leaks out.

::

    TasklineClientError            base of everything below
    ├── ClientClosedError          the client was used after close() (also a RuntimeError)
    ├── RunStateError              a run was used outside its life (also a RuntimeError)
    ├── RequestNotAnswered         a request expired or was cancelled before an answer
    │   └── ApprovalRejected       a person rejected an approval (its comment says why)
    ├── InvalidEvent               an event failed the SDK's own check; nothing was sent
    │                              (also a ValueError)
    ├── ConnectionReplacedError    another connection took over this agent (close 4000)
    ├── CursorVoidError            a subscription's cursor is not from this log (close 4409)
    ├── CredentialsError           the credentials file cannot be read or written
    ├── ServerUnreachableError     connection refused, DNS failure, or no answer in time
    │   └── DeliveryTimeoutError   events still unacknowledged when a wait ran out
    ├── UnexpectedResponseError    a 2xx answer the SDK cannot read (not the expected JSON)
    └── ApiError                   the server answered with an RFC 9457 problem (4xx/5xx)
        ├── NotFound               404: the task, agent or route does not exist
        ├── Conflict               409: an invalid status transition, an id that is taken
        │   ├── LeaseLost          409: the task's lease is another agent's, ran out, or is gone
        │   └── PreconditionFailed 412: the task changed since the version sent in If-Match
        ├── InvalidRequest         400, 413, 422: the request itself is wrong
        │   └── PreconditionRequired 428: the server wants If-Match on changes
        ├── TasklineAuthError      401, 403 (WebSocket close 4401, 4403): no token, a refused
        │                          token, or a role that may not do this
        └── EventRejected          a published batch was refused (``nack``), all or nothing

"The request failed" (``ServerUnreachableError``) and "the server said no" (``ApiError``) are
separate branches, so callers can retry the first and report the second. The live side (runs
and subscriptions) retries the first branch itself and surfaces only what retrying cannot fix
(a refused token among them: a connection closed with 4401 or 4403 is not retried).
"""

from pathlib import Path
from typing import Any

__all__ = [
    "ApiError",
    "ApprovalRejected",
    "ClientClosedError",
    "Conflict",
    "ConnectionReplacedError",
    "CredentialsError",
    "CursorVoidError",
    "DeliveryTimeoutError",
    "EventRejected",
    "InvalidEvent",
    "InvalidRequest",
    "LeaseLost",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "RequestNotAnswered",
    "RunStateError",
    "ServerUnreachableError",
    "TasklineAuthError",
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


class LeaseLost(Conflict):
    """409: this agent does not hold the task's lease, so the change was refused: another
    agent claimed the task (``holder``), this agent's lease ran out and the task went back
    to pending (``holder`` None), or nobody holds it (renewing or releasing a task that is not
    claimed). Nothing was changed; claim a task again to go on working.

    Attributes:
        task_id: the task.
        holder: the agent holding the task now (None: nobody).
        lease_token: the fencing token of the task's latest lease.
        task_status: the task's status now.
    """

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem)
        self.task_id = _text(problem.get("task_id"))
        self.holder = _text(problem.get("holder"))
        token = problem.get("lease_token")
        self.lease_token = token if isinstance(token, int) and not isinstance(token, bool) else None
        self.task_status = _text(problem.get("task_status"))
        held = f"held by {self.holder}" if self.holder else "held by nobody"
        self.args = (f"{self.detail} (409; {held})",)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class PreconditionFailed(Conflict):
    """412: the task changed since the version the change was made from (``if_match=``, or
    a replaced document's ``version``); nothing was changed.

    Read the task again (``get_task``), redo the change on what it is now, and send it with
    the new version. ``current_version`` is the task's version now (None if the server did
    not say).
    """

    @property
    def current_version(self) -> int | None:
        current = self.problem.get("current_version")
        return current if isinstance(current, int) and not isinstance(current, bool) else None


class InvalidRequest(ApiError):
    """400, 413 or 422: malformed, too large, or semantically invalid input."""


class PreconditionRequired(InvalidRequest):
    """428: the server requires changes to carry ``If-Match`` (``TASKLINE_REQUIRE_IF_MATCH``):
    pass ``if_match=`` (the task, its version, or ``"*"`` for any version)."""


class TasklineAuthError(ApiError):
    """401 or 403: the server does not know who asks, or knows and does not allow it.

    ``status`` 401 (an HTTP answer, or a WebSocket closed with 4401): no token was sent, or
    the server does not accept it (unknown, expired, revoked). ``status`` 403 (or close 4403):
    the token is valid but not for this: its role may not do it (``detail`` names the role
    and the action), or a connection was refused (an agent token used for another agent id,
    a foreign ``Origin``, a ``client_id`` that belongs to someone else).

    Retrying with the same token cannot help, so runs and subscriptions raise it instead of
    reconnecting.

    Attributes:
        token_sent: whether the refused request carried a token.
        hint: how to fix a 401 (where a token comes from); None for a 403.
        problem, status, title, detail: as for :class:`ApiError`.
    """

    def __init__(self, problem: dict[str, Any], *, token_sent: bool) -> None:
        super().__init__(problem)
        self.token_sent = token_sent
        self.hint: str | None = None
        if self.status == 401:
            self.hint = (
                "the server refused the token (unknown, expired or revoked): run "
                "`taskline login` again, or set TASKLINE_TOKEN to a valid token"
                if token_sent
                else "no token was sent: set TASKLINE_TOKEN, pass token=..., or run "
                "`taskline login`"
            )
            self.args = (f"{self.detail} ({self.status}); {self.hint}",)


class EventRejected(ApiError):
    """The server refused a published batch (a ``nack``); none of its events were stored.

    A rejection is final: re-sending the same batch fails the same way. It is raised from the
    next :meth:`~taskline.sdk.Run.flush` (or when the run ends), not from the call that queued
    the event, because events travel in batches.

    Attributes:
        task_id: the task the batch was for.
        batch_id: the SDK's id of the batch.
        event_ids: the ids of every event in the refused batch, in order.
        problem, status, detail, errors: as for :class:`ApiError`; ``errors`` name the field,
            counted inside the batch (``events.3.data.progress``).
    """

    def __init__(
        self,
        problem: dict[str, Any],
        *,
        task_id: str,
        batch_id: str,
        event_ids: list[str],
    ) -> None:
        super().__init__(problem)
        self.task_id = task_id
        self.batch_id = batch_id
        self.event_ids = event_ids


class RunStateError(TasklineClientError, RuntimeError):
    """A run was used outside its life: before entering, after leaving, or finished twice."""


class RequestNotAnswered(TasklineClientError):
    """A request to a person ended without the answer asked for: it expired (nobody answered
    in time), was cancelled (by a person, or because its task ended), or — the subclass
    :class:`ApprovalRejected` — a person rejected the approval.

    Attributes:
        request: the request as it ended (``status``, ``resolved_by``, ``comment``).
        status: its status (``expired``, ``cancelled``, ``rejected``).
        comment: what the person (or the server) said, if anything.
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        self.status = str(request.status.value)
        self.comment: str | None = request.comment
        who = f" by {request.resolved_by}" if request.resolved_by else ""
        why = f": {request.comment}" if request.comment else ""
        super().__init__(f"request {request.id} was {self.status}{who}{why}")


class ApprovalRejected(RequestNotAnswered):
    """A person rejected the approval; ``comment`` is what they said (None: nothing)."""


class InvalidEvent(TasklineClientError, ValueError):
    """An event failed the SDK's check against the event schemas; nothing was queued.

    ``field`` names the offending field (``data.progress``). Checking before queuing keeps one
    bad event from getting a whole batch of good ones refused.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConnectionReplacedError(TasklineClientError):
    """Another connection for the same agent took over (close code 4000).

    The SDK does not fight back by reconnecting, which would make two processes with one
    agent id evict each other forever; events not yet acknowledged stay unsent.
    """

    def __init__(self, agent_id: str) -> None:
        super().__init__(
            f"agent {agent_id!r} connected from elsewhere; this connection was replaced"
        )
        self.agent_id = agent_id


class CursorVoidError(TasklineClientError):
    """A subscription's cursor (``since``, ``epoch``) does not belong to the server's log.

    The server was pointed at another (or a reset) database. Seqs from the old log mean
    nothing in the new one, so the subscription stops rather than guess.
    """

    def __init__(self, task_id: str, since: int | None, epoch: str | None, reason: str) -> None:
        super().__init__(f"cannot resume task {task_id!r} at seq {since} (epoch {epoch}): {reason}")
        self.task_id = task_id
        self.since = since
        self.epoch = epoch


class CredentialsError(TasklineClientError):
    """The credentials file (``taskline login``'s tokens) cannot be read or written.

    ``path`` is the file; the ``OSError`` or JSON error is the ``__cause__``.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"credentials file {path}: {reason}")
        self.path = path
        self.reason = reason


class DeliveryTimeoutError(ServerUnreachableError):
    """Events were still unacknowledged when a wait ran out (``flush_timeout``).

    The events stay buffered and are still sent if the connection comes back before the run
    closes; ``unacknowledged`` counts them at the moment of the timeout.
    """

    def __init__(self, url: str, unacknowledged: int, timeout: float) -> None:
        super().__init__(
            url,
            f"{unacknowledged} events not acknowledged within {timeout:g} s",
            timed_out=True,
        )
        self.unacknowledged = unacknowledged
