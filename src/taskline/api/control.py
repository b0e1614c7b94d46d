"""People steering agents: pause / resume / cancel a task, and an agent's next task."""

from fastapi import APIRouter, Request, Response, status

from taskline.api.deps import BusDep, DatabaseDep
from taskline.api.recording import record_task_change
from taskline.api.responses import JSONBytes
from taskline.domain.models import Task
from taskline.domain.status import TaskStatus
from taskline.realtime.agents import AgentHub
from taskline.store.agents import AgentStore
from taskline.store.tasks import TaskStore

__all__ = ["TaskControl", "router"]

router = APIRouter(prefix="/api/v1", tags=["control"])


class TaskControl(Task):
    """The task after the change, and whether a connected agent got the command now."""

    delivered: bool


async def _control(
    request: Request,
    database: DatabaseDep,
    bus: BusDep,
    task_id: str,
    target: TaskStatus,
    command: str,
) -> TaskControl:
    async with database.write() as session:
        store = TaskStore(session)
        before = await store.get(task_id)
        task = await store.patch(task_id, {"status": target})
        events = await record_task_change(session, task, before=before, changed=["status"])
    await bus.dispatch(events)
    hub: AgentHub = request.app.state.agents
    delivered = await hub.send_command(task_id, command)
    return TaskControl(**task.model_dump(), delivered=delivered)


@router.post("/tasks/{task_id}/pause", response_model=TaskControl, summary="Pause a task")
async def pause(task_id: str, request: Request, database: DatabaseDep, bus: BusDep) -> TaskControl:
    """Move the task to ``paused`` (409 if it cannot) and tell its agent to pause."""
    return await _control(request, database, bus, task_id, TaskStatus.PAUSED, "pause")


@router.post("/tasks/{task_id}/resume", response_model=TaskControl, summary="Resume a task")
async def resume(task_id: str, request: Request, database: DatabaseDep, bus: BusDep) -> TaskControl:
    """Move the task back to ``in_progress`` and tell its agent to go on."""
    return await _control(request, database, bus, task_id, TaskStatus.IN_PROGRESS, "resume")


@router.post("/tasks/{task_id}/cancel", response_model=TaskControl, summary="Cancel a task")
async def cancel(task_id: str, request: Request, database: DatabaseDep, bus: BusDep) -> TaskControl:
    """Move the task to ``cancelled`` and tell its agent to stop."""
    return await _control(request, database, bus, task_id, TaskStatus.CANCELLED, "cancel")


@router.get(
    "/agents/{agent_id}/next-task",
    response_model=Task,
    responses={204: {"description": "No pending task is assigned to this agent."}},
    summary="The agent's next task",
)
async def next_task(agent_id: str, request: Request, database: DatabaseDep) -> Response:
    """The oldest ``pending`` task assigned to the agent, or 204 when there is none."""
    hub: AgentHub = request.app.state.agents
    async with database.read() as session:
        await AgentStore(session).get(agent_id)  # 404 for an unknown agent
    task_id = await hub.next_task(agent_id)
    if task_id is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    async with database.read() as session:
        return JSONBytes(await TaskStore(session).get_document(task_id))
