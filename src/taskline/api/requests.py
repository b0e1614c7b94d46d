"""Requests agents make of people: open one on a task, list them (a task's, the inbox), read
one (long-polling until it is answered), answer, approve or reject it, cancel it."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import RequestId, TaskId
from taskline.api.responses import JSONBytes, document, problem_doc
from taskline.domain.models import ResourceId
from taskline.domain.requests import (
    MAX_LISTED,
    Request,
    RequestAnswer,
    RequestSpec,
    RequestStatus,
)
from taskline.service.requests import MAX_WAIT

__all__ = ["CancelRequest", "RequestList", "router"]

router = APIRouter(prefix="/api/v1", tags=["requests"], route_class=JsonBodyRoute)


_401 = problem_doc("No credentials, or refused ones.")
_READ: dict[int | str, dict[str, Any]] = {401: _401, 403: problem_doc("The role may not read.")}


class RequestList(BaseModel):
    """Requests, oldest first."""

    requests: list[Request]


class CancelRequest(BaseModel):
    """Body of ``POST /requests/{id}/cancel`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=10_000)] | None = Field(
        default=None, description="Why (kept as the request's comment)."
    )


def _one(request: Request, status_code: int = 200, **headers: str) -> Response:
    return JSONBytes(document(request), status_code=status_code, headers=headers or None)


def _many(requests: list[Request]) -> Response:
    return JSONBytes({"requests": [document(r) for r in requests]})


@router.post(
    "/tasks/{task_id:id}/requests",
    response_model=Request,
    status_code=status.HTTP_201_CREATED,
    summary="Ask a person: open a question or an approval on a task",
    responses={
        401: _401,
        403: problem_doc("Viewers; an agent's token on a task that is not assigned to its agent."),
        404: problem_doc("No such task."),
        409: problem_doc(
            "The task has ended (completed, failed, cancelled); an agent that does not hold "
            "the task's lease; a conflicting write."
        ),
        422: problem_doc(
            "A bad body: an approval without action, a question with one, response_schema "
            "that is not a JSON Schema, repeated choices, expires_in out of bounds."
        ),
    },
)
async def open_request(
    task_id: TaskId, body: RequestSpec, services: ServicesDep, actor: ActorDep
) -> Response:
    """Open a request (``status: open``): the task's ``needs_input`` becomes true and
    ``request.opened`` is logged. Wait for the answer with ``GET /requests/{id}?wait=30``."""
    request = await services.requests.open(actor, task_id, body)
    return _one(request, status.HTTP_201_CREATED, Location=f"/api/v1/requests/{request.id}")


@router.get(
    "/tasks/{task_id:id}/requests",
    response_model=RequestList,
    summary="List a task's requests",
    responses={**_READ, 404: problem_doc("No such task.")},
)
async def list_task_requests(
    task_id: TaskId,
    services: ServicesDep,
    actor: ActorDep,
    status_filter: Annotated[
        list[RequestStatus], Query(alias="status", description="Only these statuses (repeat).")
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """The task's requests, oldest first (at most 500)."""
    return _many(await services.requests.list(actor, status=status_filter, task_id=task_id))


@router.get(
    "/requests",
    response_model=RequestList,
    summary="List requests across tasks (the inbox)",
    responses={**_READ, 404: problem_doc("task_id names no task.")},
)
async def list_requests(
    services: ServicesDep,
    actor: ActorDep,
    status_filter: Annotated[
        list[RequestStatus],
        Query(alias="status", description="Only these statuses (repeat); the inbox: open."),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    task_id: Annotated[ResourceId | None, Query(description="Only this task's.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = MAX_LISTED,
) -> Response:
    """Requests oldest first, of every task or one: ``?status=open`` is what waits for a
    person."""
    found = await services.requests.list(actor, status=status_filter, task_id=task_id, limit=limit)
    return _many(found)


@router.get(
    "/requests/{request_id:id}",
    response_model=Request,
    summary="Get a request, or wait until it is answered",
    responses={**_READ, 404: problem_doc("No such request.")},
)
async def get_request(
    request_id: RequestId,
    services: ServicesDep,
    actor: ActorDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT,
            allow_inf_nan=False,
            description="Seconds to wait (long poll) while the request is open: the answer "
            "comes as soon as it is answered, expired or cancelled, else after this long "
            "with the request still open (the server may wait less: TASKLINE_REQUEST_MAX_WAIT).",
        ),
    ] = 0,
) -> Response:
    """The request; with ``wait``, once it is no longer open or ``wait`` seconds passed."""
    if wait > 0:
        return _one(await services.requests.wait(actor, request_id, wait))
    return _one(await services.requests.get(actor, request_id))


@router.post(
    "/requests/{request_id:id}/answer",
    response_model=Request,
    summary="Answer a question, or approve or reject an approval",
    responses={
        401: _401,
        403: problem_doc("Only people (members, admins) answer: not viewers, not agents."),
        404: problem_doc("No such request."),
        409: problem_doc(
            "The request is not open: answered, approved, rejected, expired, cancelled."
        ),
        422: problem_doc(
            "The answer fails the request's choices or response_schema; a question answered "
            "without 'answer', an approval without 'decision'; a bad body."
        ),
    },
)
async def answer_request(
    request_id: RequestId, body: RequestAnswer, services: ServicesDep, actor: ActorDep
) -> Response:
    """A question takes ``{"answer": …}``; an approval ``{"decision": "approve"|"reject",
    "arguments"?: {…}}`` (approved ``arguments`` replace the asked ones; absent: as asked).
    Logs ``request.answered``; the task's ``needs_input`` follows."""
    return _one(await services.requests.answer(actor, request_id, body))


@router.post(
    "/requests/{request_id:id}/cancel",
    response_model=Request,
    summary="Cancel a request",
    responses={
        401: _401,
        403: problem_doc("Viewers; an agent that did not ask it and does not work on the task."),
        404: problem_doc("No such request."),
        409: problem_doc("The request is not open; an agent that does not hold the task's lease."),
        422: problem_doc("A bad body."),
    },
)
async def cancel_request(
    request_id: RequestId,
    services: ServicesDep,
    actor: ActorDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Response:
    """Cancel it (by whoever asked, an agent on the task, or a person); logs
    ``request.cancelled``."""
    reason = body.reason if body is not None else None
    return _one(await services.requests.cancel(actor, request_id, reason))
