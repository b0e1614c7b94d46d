"""Task routes: list, create, read, replace, patch, delete."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import TaskId
from taskline.api.preconditions import CONDITIONAL, IfMatchDep, send_etag
from taskline.api.responses import JSONBytes, document
from taskline.domain.errors import InvalidInputError
from taskline.domain.models import Task, TaskCreate, TaskPage, TaskPatch, TaskReplace
from taskline.domain.preconditions import etag
from taskline.domain.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SortField, TaskQuery
from taskline.domain.status import TaskStatus

__all__ = ["parse_task_query", "router"]

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], route_class=JsonBodyRoute)

_STATUS = "|".join(s.value for s in TaskStatus)
#: ``status`` as the parser reads it: comma-separated statuses (spaces and empty items ignored).
STATUS_FILTER_SCHEMA = {
    "type": "array",
    "items": {"type": "string", "pattern": rf"^\s*({_STATUS})?\s*(,\s*({_STATUS})?\s*)*$"},
}
#: ``sort``: a field, ``-`` prefixed for descending.
SORT_SCHEMA = {"enum": [p + f.value for f in SortField for p in ("", "-")]}


def parse_task_query(
    status_filter: list[str],
    agent: str | None,
    tag: str | None,
    q: str | None,
    sort: str,
    limit: int,
    offset: int,
    needs_input: bool | None = None,
) -> TaskQuery:
    """Build a :class:`TaskQuery` from query parameters, naming the bad one on error.

    ``status`` may be repeated or comma-separated; ``sort`` is a field name, ``-`` prefixed for
    descending order.
    """
    statuses: list[TaskStatus] = []
    for value in (v for raw in status_filter for v in raw.split(",") if v.strip()):
        try:
            statuses.append(TaskStatus(value.strip()))
        except ValueError:
            allowed = ", ".join(s.value for s in TaskStatus)
            raise InvalidInputError(
                f"unknown status {value!r}; use one of: {allowed}", field="status"
            ) from None
    descending = sort.startswith("-")
    try:
        sort_field = SortField(sort.removeprefix("-"))
    except ValueError:
        allowed = ", ".join(f.value for f in SortField)
        raise InvalidInputError(
            f"cannot sort by {sort!r}; use one of: {allowed} (prefix '-' for descending)",
            field="sort",
        ) from None
    return TaskQuery(
        statuses=tuple(statuses),
        agent_id=agent or None,
        tag=tag or None,
        search=q.strip() if q and q.strip() else None,
        needs_input=needs_input,
        sort=sort_field,
        descending=descending,
        limit=limit,
        offset=offset,
    )


@router.get("/", response_model=TaskPage, summary="List tasks")
async def list_tasks(
    services: ServicesDep,
    status_filter: Annotated[
        list[str],
        Query(
            alias="status",
            description="Status filter; repeat or comma-separate.",
            json_schema_extra=STATUS_FILTER_SCHEMA,
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    agent: Annotated[str | None, Query(description="Assigned agent id.")] = None,
    tag: Annotated[str | None, Query(description="Tasks carrying this tag.")] = None,
    q: Annotated[str | None, Query(description="Text search in title and description.")] = None,
    needs_input: Annotated[
        bool | None,
        Query(description="Only tasks with (true) or without (false) an open request."),
    ] = None,
    sort: Annotated[
        str,
        Query(description="Sort field, '-' prefix for descending.", json_schema_extra=SORT_SCHEMA),
    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    query = parse_task_query(status_filter, agent, tag, q, sort, limit, offset, needs_input)
    page = await services.tasks.page(query)
    # Served as bytes straight from the documents: no model is built on this hot path.
    return JSONBytes(page, headers={"X-Total-Count": str(page["total"])})


@router.post("/", response_model=Task, status_code=status.HTTP_201_CREATED, summary="Create a task")
async def create_task(body: TaskCreate, services: ServicesDep, actor: ActorDep) -> Response:
    """Create the task and log ``task_created`` in the same transaction."""
    task = await services.tasks.create(body, actor=actor)
    return JSONBytes(
        document(task),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/api/v1/tasks/{task.id}", "ETag": etag(task.version)},
    )


@router.get("/{task_id:id}", response_model=Task, summary="Get a task")
async def get_task(task_id: TaskId, services: ServicesDep) -> Response:
    """The task; its ``ETag`` is its version, for ``If-Match`` on changes."""
    document = await services.tasks.document(task_id)
    return JSONBytes(document, headers={"ETag": etag(document["version"])})


@router.put(
    "/{task_id:id}", response_model=Task, summary="Replace a task's fields", responses=CONDITIONAL
)
async def replace_task(
    task_id: TaskId,
    body: TaskReplace,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
) -> Response:
    """Replace the fields; logs ``task_updated`` (and the status event if it moved).

    The document ``GET`` answers may be sent back edited: its read-only fields are ignored
    when unchanged (422 when changed), its ``version`` must be current (else 412)."""
    task = await services.tasks.replace(task_id, body, actor=actor, if_match=if_match)
    answer = JSONBytes(document(task))
    send_etag(answer, task.version)
    return answer


@router.patch(
    "/{task_id:id}",
    response_model=Task,
    summary="Change some of a task's fields",
    responses=CONDITIONAL,
)
async def patch_task(
    task_id: TaskId,
    body: TaskPatch,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatchDep,
) -> Response:
    """Change the fields sent; logs ``task_updated`` (and the status event if it moved)."""
    task = await services.tasks.patch(task_id, body.changes(), actor=actor, if_match=if_match)
    answer = JSONBytes(document(task))
    send_etag(answer, task.version)
    return answer


@router.delete(
    "/{task_id:id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a task",
    responses=CONDITIONAL,
)
async def delete_task(
    task_id: TaskId, services: ServicesDep, actor: ActorDep, if_match: IfMatchDep
) -> Response:
    """Delete the task; its log keeps a final ``task_deleted`` event."""
    await services.tasks.delete(task_id, actor=actor, if_match=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
