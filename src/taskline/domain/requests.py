"""Requests: an agent asks a person a question, or for an approval of an action, and waits.

A request is durable: it lives in the database beside its task, survives restarts of the
server and of the agent, and is answered once. Its life::

    open ──► answered    (a question's answer)
         ├─► approved    (an approval, with the arguments as asked or as the person edited them)
         ├─► rejected    (an approval refused)
         ├─► expired     (``expires_at`` passed before anyone answered; by the server)
         └─► cancelled   (by the agent that asked, a person, or the task ending)

Only ``open`` moves; a request that left it never changes again (answering it is a 409).
A question may constrain its answer with a JSON Schema (``response_schema``, checked with the
``jsonschema`` library, the draft the schema's ``$schema`` names, else 2020-12) and with
``choices`` (the answer must be one of the strings); an answer that fails either is refused
with :class:`~taskline.domain.errors.InvalidInputError` (422) and the request stays open.

Every change is logged on the task as ``request.opened`` / ``request.answered`` (answered,
approved, rejected) / ``request.expired`` / ``request.cancelled``, whose data is the whole
request as it is after the change. A task has ``needs_input`` while it has an open request.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import jsonschema
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskline.domain.errors import ConflictError, InvalidInputError
from taskline.domain.events import WebSocketEventType
from taskline.domain.ids import new_id
from taskline.domain.json_bounds import StorableJson, StorableObject

__all__ = [
    "MAX_EXPIRES_IN",
    "MAX_LISTED",
    "ApprovalAction",
    "Request",
    "RequestAnswer",
    "RequestKind",
    "RequestSpec",
    "RequestStatus",
    "Risk",
    "close",
    "event_for",
    "new_request",
    "resolve",
]

#: At most this many requests in one listing.
MAX_LISTED = 500
#: The longest a request may stay open before it expires (30 days).
MAX_EXPIRES_IN = 30 * 86_400.0
_MAX_QUESTION = 10_000
_MAX_CHOICES = 100


class RequestKind(StrEnum):
    QUESTION = "question"  #: answered with a JSON value
    APPROVAL = "approval"  #: approved (maybe with edited arguments) or rejected


class RequestStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


Question = Annotated[str, Field(min_length=1, max_length=_MAX_QUESTION)]
Comment = Annotated[str, Field(max_length=_MAX_QUESTION)]
Choice = Annotated[str, Field(min_length=1, max_length=500)]


class ApprovalAction(BaseModel):
    """The action an approval asks for: a name, its arguments, why, and how risky."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    arguments: StorableObject = Field(default_factory=dict)
    reason: Comment | None = None
    risk: Risk = Risk.MEDIUM


class RequestSpec(BaseModel):
    """What an agent asks (the body of ``POST /tasks/{id}/requests``).

    A question may carry ``response_schema`` and ``choices``; an approval must carry
    ``action`` and neither of those.
    """

    model_config = ConfigDict(extra="forbid")

    kind: RequestKind
    question: Question = Field(description="What the person is asked (approval: what it asks).")
    response_schema: StorableObject | None = Field(
        default=None, description="A JSON Schema the answer of a question must validate against."
    )
    choices: Annotated[list[Choice], Field(min_length=1, max_length=_MAX_CHOICES)] | None = Field(
        default=None, description="The answer of a question must be one of these strings."
    )
    action: ApprovalAction | None = Field(
        default=None, description="The action an approval asks for (required for approvals)."
    )
    tool_call_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The pending tool call the request is about (AG-UI)."
    )
    run_id: Annotated[str, Field(min_length=1, max_length=80)] | None = Field(
        default=None, description="The run that asks."
    )
    expires_in: Annotated[float, Field(gt=0, le=MAX_EXPIRES_IN, allow_inf_nan=False)] | None = (
        Field(default=None, description="Seconds until the request expires unanswered.")
    )

    @model_validator(mode="after")
    def _fits_its_kind(self) -> "RequestSpec":
        if self.kind == RequestKind.APPROVAL:
            if self.action is None:
                raise ValueError("an approval needs an 'action' (name, arguments)")
            if self.response_schema is not None or self.choices is not None:
                raise ValueError("an approval takes no response_schema or choices")
        elif self.action is not None:
            raise ValueError("a question takes no 'action' (ask for an approval instead)")
        if self.choices is not None and len(set(self.choices)) != len(self.choices):
            raise ValueError("choices must not repeat")
        return self


class RequestAnswer(BaseModel):
    """A person's answer (the body of ``POST /requests/{id}/answer``): a question takes
    ``answer``; an approval takes ``decision`` and, when approving, maybe edited
    ``arguments``."""

    model_config = ConfigDict(extra="forbid")

    answer: StorableJson = Field(default=None, description="A question's answer (any JSON).")
    decision: Literal["approve", "reject"] | None = Field(
        default=None, description="An approval's decision."
    )
    arguments: StorableObject | None = Field(
        default=None, description="Approving: the arguments to run with (absent: as asked)."
    )
    comment: Comment | None = None


class Request(BaseModel):
    """A request as stored, served and logged (see the module docstring)."""

    id: str
    task_id: str
    kind: RequestKind
    status: RequestStatus
    question: str
    response_schema: dict[str, Any] | None = None
    choices: list[str] | None = None
    action: ApprovalAction | None = None
    tool_call_id: str | None = None
    run_id: str | None = None
    expires_at: datetime | None = None
    created_at: datetime
    created_by: str = Field(description="Who asked (an actor: agent:…, person:…, token:…).")
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(
        default=None, description="Who answered or cancelled it (system:requests: it expired)."
    )
    answer: Any = Field(default=None, description="A question's answer.")
    arguments: dict[str, Any] | None = Field(
        default=None, description="An approval's edited arguments (null: approved as asked)."
    )
    comment: str | None = None

    def due(self, now: datetime) -> bool:
        """Whether it is open and its ``expires_at`` has passed by ``now``."""
        return (
            self.status == RequestStatus.OPEN
            and self.expires_at is not None
            and self.expires_at <= now
        )


def new_request(task_id: str, spec: RequestSpec, *, by: str, now: datetime) -> Request:
    """A new open request for ``task_id`` asked by ``by`` (an actor's text form).

    Raises:
        InvalidInputError: ``response_schema`` is not a valid JSON Schema.
    """
    if spec.response_schema is not None:
        try:
            jsonschema.validators.validator_for(spec.response_schema).check_schema(
                spec.response_schema
            )
        except SchemaError as exc:
            raise InvalidInputError(
                f"response_schema: not a valid JSON Schema: {exc.message}",
                field="response_schema",
            ) from None
        except Exception as exc:  # a "$schema" that is no URI (a list, say), …
            raise InvalidInputError(
                f"response_schema: not a usable JSON Schema: {exc}", field="response_schema"
            ) from None
    expires_at = None if spec.expires_in is None else now + timedelta(seconds=spec.expires_in)
    return Request(
        id=new_id("req"),
        task_id=task_id,
        kind=spec.kind,
        status=RequestStatus.OPEN,
        question=spec.question,
        response_schema=spec.response_schema,
        choices=spec.choices,
        action=spec.action,
        tool_call_id=spec.tool_call_id,
        run_id=spec.run_id,
        expires_at=expires_at,
        created_at=now,
        created_by=by,
    )


def _check_open(request: Request) -> None:
    if request.status != RequestStatus.OPEN:
        raise ConflictError(
            f"request {request.id!r} is {request.status.value}, not open: it was "
            f"{'answered' if request.resolved_by else 'closed'}"
            + (f" by {request.resolved_by}" if request.resolved_by else "")
        )


def resolve(request: Request, reply: RequestAnswer, *, by: str, now: datetime) -> Request:
    """The request answered by ``by``: a question ``answered``, an approval ``approved`` or
    ``rejected``.

    Raises:
        ConflictError: the request is not open (409).
        InvalidInputError: a question's answer is missing, not one of its ``choices`` or fails
            its ``response_schema``; an approval without a ``decision``, or one given an
            ``answer`` (422, naming the field).
    """
    _check_open(request)
    sent = reply.model_fields_set
    if request.kind == RequestKind.QUESTION:
        if "answer" not in sent:
            raise InvalidInputError("answer: a question needs an 'answer'", field="answer")
        if "decision" in sent or "arguments" in sent:
            raise InvalidInputError(
                "decision: a question is answered with 'answer', not a decision",
                field="decision",
            )
        _check_answer(request, reply.answer)
        return request.model_copy(
            update={
                "status": RequestStatus.ANSWERED,
                "answer": reply.answer,
                "comment": reply.comment,
                "resolved_at": now,
                "resolved_by": by,
            }
        )
    if reply.decision is None:
        raise InvalidInputError(
            "decision: an approval needs a 'decision' (approve or reject)", field="decision"
        )
    if "answer" in sent:
        raise InvalidInputError(
            "answer: an approval is answered with a 'decision', not an answer", field="answer"
        )
    approved = reply.decision == "approve"
    return request.model_copy(
        update={
            "status": RequestStatus.APPROVED if approved else RequestStatus.REJECTED,
            "arguments": reply.arguments if approved else None,
            "comment": reply.comment,
            "resolved_at": now,
            "resolved_by": by,
        }
    )


def _check_answer(request: Request, answer: Any) -> None:
    if request.choices is not None and answer not in request.choices:
        raise InvalidInputError(
            f"answer: {answer!r} is not one of the choices: {', '.join(request.choices)}",
            field="answer",
        )
    schema = request.response_schema
    if schema is None:
        return
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(answer))
    except Exception as exc:  # a $ref that cannot be resolved, say: the schema cannot be used
        raise InvalidInputError(
            f"answer: the request's response_schema cannot be applied: {exc}", field="answer"
        ) from None
    if error is not None:
        where = "".join(f"/{part}" for part in error.absolute_path)
        raise InvalidInputError(
            f"answer{where}: {error.message} (the request's response_schema)", field="answer"
        )


def close(
    request: Request,
    status: Literal[RequestStatus.EXPIRED, RequestStatus.CANCELLED],
    *,
    by: str,
    now: datetime,
    comment: str | None = None,
) -> Request:
    """The request expired or cancelled by ``by``.

    Raises:
        ConflictError: the request is not open (409).
    """
    _check_open(request)
    return request.model_copy(
        update={"status": status, "resolved_at": now, "resolved_by": by, "comment": comment}
    )


_EVENTS = {
    RequestStatus.OPEN: WebSocketEventType.REQUEST_OPENED,
    RequestStatus.ANSWERED: WebSocketEventType.REQUEST_ANSWERED,
    RequestStatus.APPROVED: WebSocketEventType.REQUEST_ANSWERED,
    RequestStatus.REJECTED: WebSocketEventType.REQUEST_ANSWERED,
    RequestStatus.EXPIRED: WebSocketEventType.REQUEST_EXPIRED,
    RequestStatus.CANCELLED: WebSocketEventType.REQUEST_CANCELLED,
}


def event_for(request: Request) -> WebSocketEventType:
    """The event type that logs the request reaching its current status."""
    return _EVENTS[request.status]
