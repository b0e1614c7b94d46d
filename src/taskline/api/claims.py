"""Claiming tasks with leases: claim the next pending task, renew its lease, release it."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, ConfigDict, Field

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import TaskId
from taskline.api.preconditions import send_etag
from taskline.api.responses import JSONBytes, document, problem_doc
from taskline.domain.models import ResourceId, Tag, Task

__all__ = ["ClaimRequest", "RenewRequest", "router"]

router = APIRouter(prefix="/api/v1/tasks", tags=["claims"], route_class=JsonBodyRoute)


_AUTH: dict[int | str, dict[str, Any]] = {
    401: problem_doc("No credentials, or refused ones."),
    403: problem_doc("The role may not claim (viewers), or an agent's token names another agent."),
}
_LEASE_CONFLICT = problem_doc(
    "The caller does not hold the task's lease: another agent does (holder, lease_token), "
    "the caller's lease ran out, or nobody holds the task (holder null; task_status)."
)


class ClaimRequest(BaseModel):
    """Body of ``POST /tasks/claim`` (every member optional; no body claims anything)."""

    model_config = ConfigDict(extra="forbid")

    agent_id: ResourceId | None = Field(
        default=None,
        description="The agent claiming: an agent's token claims for itself (may be given, "
        "must be its own); a person (member, admin) must name the agent it claims for.",
    )
    tags: list[Tag] = Field(
        default_factory=list,
        max_length=50,
        description="Only tasks carrying at least one of these tags.",
    )
    assigned: Literal["any", "mine", "unassigned"] = Field(
        default="any",
        description="Tasks assigned to the agent or to nobody (any), only to the agent "
        "(mine), only to nobody (unassigned).",
    )
    lease_seconds: float | None = Field(
        default=None,
        ge=1,
        allow_inf_nan=False,
        description="How long the lease lasts without a renewal (default TASKLINE_LEASE_SECONDS,"
        " at least 1, at most TASKLINE_LEASE_MAX_SECONDS).",
    )


class RenewRequest(BaseModel):
    """Body of ``POST /tasks/{id}/lease`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    lease_seconds: float | None = Field(
        default=None,
        ge=1,
        allow_inf_nan=False,
        description="The lease from now on (default: what the claim asked for; at least 1, "
        "at most TASKLINE_LEASE_MAX_SECONDS).",
    )


def _answer(task: Task) -> Response:
    answer = JSONBytes(document(task))
    send_etag(answer, task.version)
    return answer


@router.post(
    "/claim",
    response_model=Task,
    summary="Claim the next pending task",
    responses={
        204: {"description": "No pending task matches."},
        **_AUTH,
        404: problem_doc("A person named an agent that does not exist."),
        409: problem_doc("The database refused the change (a conflicting write)."),
        422: problem_doc("A person named no agent_id; lease_seconds out of bounds; a bad body."),
    },
)
async def claim_task(
    services: ServicesDep,
    actor: ActorDep,
    body: Annotated[ClaimRequest | None, Body()] = None,
) -> Response:
    """Give the most urgent, then oldest, matching ``pending`` task to the agent: it moves to
    ``in_progress``, assigned to the agent, with a lease (``lease``: agent_id, token — the
    fencing token — and expires_at). Any event the holder publishes renews the lease; one
    that runs out gives the task back to pending. 204 when nothing matches."""
    request = body or ClaimRequest()
    task = await services.claims.claim(
        actor,
        agent_id=request.agent_id,
        tags=request.tags,
        assigned=request.assigned,
        lease_seconds=request.lease_seconds,
    )
    if task is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return _answer(task)


@router.post(
    "/{task_id:id}/lease",
    response_model=Task,
    summary="Renew a claimed task's lease",
    responses={
        **_AUTH,
        404: problem_doc("No such task."),
        409: _LEASE_CONFLICT,
        422: problem_doc("lease_seconds out of bounds; a bad body."),
    },
)
async def renew_lease(
    task_id: TaskId,
    services: ServicesDep,
    actor: ActorDep,
    body: Annotated[RenewRequest | None, Body()] = None,
) -> Response:
    """Extend the lease to ``lease_seconds`` from now, for its holder (or a person)."""
    seconds = body.lease_seconds if body is not None else None
    return _answer(await services.claims.renew(actor, task_id, lease_seconds=seconds))


@router.post(
    "/{task_id:id}/release",
    response_model=Task,
    summary="Give a claimed task back",
    responses={
        **_AUTH,
        404: problem_doc("No such task."),
        409: _LEASE_CONFLICT,
        422: problem_doc("A bad request."),
    },
)
async def release_task(task_id: TaskId, services: ServicesDep, actor: ActorDep) -> Response:
    """End the lease: the task goes back to ``pending``, unassigned unless it was assigned to
    the holder before its claim. By its holder, or a person (the holder then lost it)."""
    return _answer(await services.claims.release(actor, task_id))
