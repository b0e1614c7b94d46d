"""People steering agents: pause / resume / cancel a task, and an agent's next task."""

from fastapi import APIRouter, Response, status

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.paths import AgentId, TaskId
from taskline.api.preconditions import send_etag
from taskline.api.responses import JSONBytes, document
from taskline.domain.models import Task
from taskline.domain.status import TaskStatus

__all__ = ["TaskControl", "router"]

router = APIRouter(prefix="/api/v1", tags=["control"])


class TaskControl(Task):
    """The task after the change, and whether a connected agent got the command now."""

    delivered: bool


async def _move(services: ServicesDep, actor: ActorDep, task_id: str, to: TaskStatus) -> Response:
    task, delivered = await services.steering.move(task_id, to, actor=actor)
    answer = JSONBytes({**document(task), "delivered": delivered})
    send_etag(answer, task.version)
    return answer


@router.post("/tasks/{task_id:id}/pause", response_model=TaskControl, summary="Pause a task")
async def pause(task_id: TaskId, services: ServicesDep, actor: ActorDep) -> Response:
    """Move the task to ``paused`` (409 if it cannot) and tell its agent to pause."""
    return await _move(services, actor, task_id, TaskStatus.PAUSED)


@router.post("/tasks/{task_id:id}/resume", response_model=TaskControl, summary="Resume a task")
async def resume(task_id: TaskId, services: ServicesDep, actor: ActorDep) -> Response:
    """Move the task back to ``in_progress`` and tell its agent to go on."""
    return await _move(services, actor, task_id, TaskStatus.IN_PROGRESS)


@router.post("/tasks/{task_id:id}/cancel", response_model=TaskControl, summary="Cancel a task")
async def cancel(task_id: TaskId, services: ServicesDep, actor: ActorDep) -> Response:
    """Move the task to ``cancelled`` and tell its agent to stop."""
    return await _move(services, actor, task_id, TaskStatus.CANCELLED)


@router.get(
    "/agents/{agent_id:id}/next-task",
    response_model=Task,
    responses={204: {"description": "No pending task is assigned to this agent."}},
    summary="The agent's next task",
)
async def next_task(agent_id: AgentId, services: ServicesDep) -> Response:
    """The oldest ``pending`` task assigned to the agent, or 204 when there is none."""
    task_id = await services.agents.next_task(agent_id)
    if task_id is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONBytes(await services.tasks.document(task_id))
