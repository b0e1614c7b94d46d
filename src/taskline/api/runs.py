"""A task's runs: ``GET /api/v1/tasks/{task_id}/runs``.

Each run (an agent's go at the task: an AG-UI request, a bridged remote run, an SDK run) with
its outcome, oldest first, derived from the task's log (:mod:`taskline.domain.runs`: nothing
is stored besides the events, so the list is as long as the log retains).
"""

from fastapi import APIRouter
from pydantic import BaseModel

from taskline.api.deps import ServicesDep
from taskline.api.paths import TaskId
from taskline.domain.runs import RunSummary

__all__ = ["TaskRuns", "router"]

router = APIRouter(prefix="/api/v1", tags=["runs"])


class TaskRuns(BaseModel):
    """The runs of one task, oldest first."""

    task_id: str
    runs: list[RunSummary]


@router.get("/tasks/{task_id:id}/runs", response_model=TaskRuns, summary="A task's runs")
async def task_runs(task_id: TaskId, services: ServicesDep) -> TaskRuns:
    """The task's runs and how each ended (``running``/``paused`` while it goes on,
    ``completed``, ``failed``, ``cancelled``, or ``unserved``: nobody could serve it)."""
    return TaskRuns(task_id=task_id, runs=await services.events.runs(task_id))
