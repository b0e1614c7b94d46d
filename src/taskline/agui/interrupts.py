"""Requests ⇄ AG-UI 1.0 interrupts, with the official ``ag_ui.core`` models (no I/O here).

A run that stops to ask a person ends with ``RUN_FINISHED`` whose ``outcome`` is
``RunFinishedInterruptOutcome``, one :class:`~ag_ui.core.Interrupt` per open request
(:func:`interrupt_of`):

==================  ==========================================================================
``Interrupt``       from the :class:`~taskline.domain.requests.Request`
==================  ==========================================================================
``id``              the request's id (``req_…``): a resume entry answers it by this id
``reason``          ``tool_call`` (an approval of a pending tool call, ``toolCallId`` set),
                    ``confirmation`` (another approval), ``input_required`` (a question)
``message``         the request's question
``toolCallId``      its ``tool_call_id``
``responseSchema``  a question's ``response_schema`` (or its ``choices`` as an enum);
                    an approval's :data:`APPROVAL_SCHEMA`
``expiresAt``       its ``expires_at`` (ISO 8601, UTC)
``metadata``        ``{"taskline": {"kind", "task_id", "action", "choices"}}``
==================  ==========================================================================

A resume entry (:func:`answer_of`) with status ``resolved`` answers the request with its
``payload``: a question's answer is the payload itself; an approval's payload is
``{"approved": true|false, "arguments"?: {...}, "comment"?: "..."}`` (``{"decision":
"approve"|"reject", ...}`` is taken too). Status ``cancelled`` cancels the request.

Going the other way, an interrupt ingested from an AG-UI agent becomes a request
(:func:`spec_of`): ``tool_call`` and ``confirmation`` are approvals (the action named by
``metadata.name`` or the tool call), any other reason a question with the interrupt's
``responseSchema``.
"""

from datetime import UTC, datetime
from typing import Any

from ag_ui.core import Interrupt, ResumeEntry, RunFinishedEvent, RunFinishedInterruptOutcome

from taskline.domain.errors import InvalidInputError
from taskline.domain.requests import (
    ApprovalAction,
    Request,
    RequestAnswer,
    RequestKind,
    RequestSpec,
)

__all__ = [
    "APPROVAL_SCHEMA",
    "answer_of",
    "interrupt_of",
    "interrupted",
    "spec_of",
]

#: What an approval's resume payload looks like.
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "arguments": {"type": "object", "description": "Edited arguments (absent: as asked)."},
        "comment": {"type": "string"},
    },
    "required": ["approved"],
}
_APPROVALS = frozenset({"tool_call", "confirmation"})
_MAX_QUESTION = 10_000


def interrupt_of(request: Request) -> Interrupt:
    """The AG-UI interrupt that asks what ``request`` asks (see the module table)."""
    schema: dict[str, Any] | None
    if request.kind == RequestKind.APPROVAL:
        reason = "tool_call" if request.tool_call_id else "confirmation"
        schema = APPROVAL_SCHEMA
    else:
        reason = "input_required"
        schema = request.response_schema
        if schema is None and request.choices:
            schema = {"type": "string", "enum": list(request.choices)}
    taskline: dict[str, Any] = {"kind": request.kind.value, "task_id": request.task_id}
    if request.action is not None:
        taskline["action"] = request.action.model_dump(mode="json")
    if request.choices is not None:
        taskline["choices"] = list(request.choices)
    expires = request.expires_at
    return Interrupt(
        id=request.id,
        reason=reason,
        message=request.question,
        tool_call_id=request.tool_call_id,
        response_schema=schema,
        expires_at=expires.astimezone(UTC).isoformat().replace("+00:00", "Z") if expires else None,
        metadata={"taskline": taskline},
    )


def interrupted(thread_id: str, run_id: str, requests: list[Request]) -> RunFinishedEvent:
    """The ``RUN_FINISHED`` of a run that stopped for ``requests`` (at least one)."""
    if not requests:
        raise ValueError("an interrupt outcome needs at least one request")
    return RunFinishedEvent(
        thread_id=thread_id,
        run_id=run_id,
        outcome=RunFinishedInterruptOutcome(interrupts=[interrupt_of(r) for r in requests]),
    )


def answer_of(request: Request, entry: ResumeEntry) -> RequestAnswer | None:
    """The answer a resume entry gives ``request``; None when it cancels it.

    Raises:
        InvalidInputError: an approval's payload is not ``{"approved": bool, ...}`` (named
            ``resume.<interruptId>.payload``); the request's own checks (schema, choices)
            come when it is answered.
    """
    if entry.status == "cancelled":
        return None
    payload = entry.payload
    field = f"resume.{entry.interrupt_id}.payload"
    if request.kind == RequestKind.QUESTION:
        return RequestAnswer(answer=payload)
    if not isinstance(payload, dict):
        raise InvalidInputError(
            f'{field}: an approval takes {{"approved": true|false}}', field=field
        )
    decision = payload.get("decision")
    if decision is None and isinstance(payload.get("approved"), bool):
        decision = "approve" if payload["approved"] else "reject"
    if decision not in ("approve", "reject"):
        raise InvalidInputError(
            f'{field}: an approval takes {{"approved": true|false}}', field=field
        )
    arguments = payload.get("arguments")
    comment = payload.get("comment")
    if arguments is not None and not isinstance(arguments, dict):
        raise InvalidInputError(f"{field}.arguments: must be an object", field=f"{field}.arguments")
    if comment is not None and not isinstance(comment, str):
        raise InvalidInputError(f"{field}.comment: must be a string", field=f"{field}.comment")
    return RequestAnswer(
        decision=decision, arguments=arguments if decision == "approve" else None, comment=comment
    )


def spec_of(interrupt: Interrupt, *, run_id: str | None, now: datetime) -> RequestSpec:
    """The request that asks what an ingested ``interrupt`` asks (see the module docstring).

    Raises:
        InvalidInputError: the interrupt has already expired, or does not fit a request.
    """
    question = (interrupt.message or interrupt.reason or "input required")[:_MAX_QUESTION]
    expires_in: float | None = None
    if interrupt.expires_at:
        try:
            moment = datetime.fromisoformat(interrupt.expires_at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"interrupt {interrupt.id}: expiresAt is not an ISO 8601 time",
                field="expiresAt",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        expires_in = (moment - now).total_seconds()
        if expires_in <= 0:
            raise InvalidInputError(
                f"interrupt {interrupt.id}: expired at {interrupt.expires_at}", field="expiresAt"
            )
    metadata = interrupt.metadata or {}
    common: dict[str, Any] = {
        "question": question,
        "tool_call_id": interrupt.tool_call_id,
        "run_id": run_id,
        "expires_in": expires_in,
    }
    if interrupt.reason in _APPROVALS:
        name = metadata.get("name") or metadata.get("toolCallName") or interrupt.reason
        arguments = metadata.get("arguments")
        action = ApprovalAction(
            name=str(name)[:200],
            arguments=arguments if isinstance(arguments, dict) else {},
            reason=interrupt.message,
        )
        return RequestSpec(kind=RequestKind.APPROVAL, action=action, **common)
    return RequestSpec(
        kind=RequestKind.QUESTION, response_schema=interrupt.response_schema, **common
    )
