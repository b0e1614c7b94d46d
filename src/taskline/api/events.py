"""Event log routes: publish (for agents), history, recent events, shared state."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field, JsonValue, ValidationError

from taskline.agui import attribute_runs, from_agui
from taskline.api.cursors import MAX_SEQ
from taskline.api.deps import ActorDep, ServicesDep
from taskline.api.json_body import JsonBodyRoute
from taskline.api.paths import TaskId
from taskline.api.responses import JSONBytes
from taskline.domain.errors import InvalidInputError
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.service.agent_session import MAX_BATCH

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["events"], route_class=JsonBodyRoute)


class PublishResult(BaseModel):
    """What a publish stored: the events' ids and seqs, in the order sent."""

    task_id: str
    seqs: list[int]
    ids: list[str]
    last_seq: int


class TaskStateOut(BaseModel):
    task_id: str
    version: int
    state: JsonValue


class EventPage(BaseModel):
    task_id: str
    events: list[WebSocketMessage]
    first_seq: int = Field(description="Oldest seq still retained (1 unless trimmed).")
    last_seq: int


def parse_events(body: Any, *, agui: bool = False) -> list[EventIn]:
    """Accept one event, a list of events, or ``{"events": [...]}``; name the bad field.

    With ``agui`` the events are AG-UI events (camelCase, validated by the official models)
    and are translated as ``taskline.agui`` documents.
    """
    if (
        isinstance(body, dict)
        and "events" in body
        and "event_type" not in body
        and "type" not in body
    ):
        items = body["events"]
    elif isinstance(body, list):
        items = body
    else:
        items = [body]
    if not isinstance(items, list) or not items:
        raise InvalidInputError("events: send one event or a non-empty list", field="events")
    if len(items) > MAX_BATCH:
        raise InvalidInputError(
            f"events: a batch holds at most {MAX_BATCH} events, got {len(items)}", field="events"
        )
    if agui:
        events = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                field = f"events.{index}"
                raise InvalidInputError(f"{field}: must be a JSON object", field=field)
            events.append(from_agui(item, field=f"events.{index}"))
        return events
    events = []
    for index, item in enumerate(items):
        try:
            events.append(EventIn.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in ("events", index, *first["loc"]))
            raise InvalidInputError(f"{path}: {first['msg']}", field=path) from None
    return events


@router.post("/tasks/{task_id:id}/events", response_model=PublishResult, summary="Publish events")
async def publish_events(
    task_id: TaskId,
    services: ServicesDep,
    actor: ActorDep,
    body: Annotated[Any, Body(description="One event, a list, or {'events': [...]}")],
    format: Annotated[
        Literal["taskline", "agui"],
        Query(description="agui: the events are AG-UI protocol events (camelCase JSON)."),
    ] = "taskline",
    run_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=80,
            description="format=agui: the run the events belong to, put on each envelope "
            "(default: the runId of the batch's RUN_STARTED before them).",
        ),
    ] = None,
    source: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="format=agui: recorded as each event's source (default: agui).",
        ),
    ] = None,
) -> PublishResult:
    """Store one event or a batch (up to 1,000), all or nothing, then deliver them live.

    Re-sending an event ``id`` that is stored already returns its seq and stores nothing.
    AG-UI events (``format=agui``) carry their run on the envelope: ``run_id`` when given,
    else the ``runId`` of the batch's last ``RUN_STARTED`` before them; a ``RUN_STARTED`` on
    a completed or failed task is a new run that reopens it; a ``RUN_FINISHED`` whose
    outcome is an interrupt opens a request per interrupt (and is stored naming them).
    """
    if format == "agui":
        events = attribute_runs(parse_events(body, agui=True), run_id)
        committed = await services.agui_ingest.publish(
            task_id, events, actor=actor, source=source or "agui"
        )
    else:
        committed = await services.events.publish(task_id, parse_events(body), actor=actor)
    seqs = [m.seq or 0 for m in committed]
    return PublishResult(
        task_id=task_id, seqs=seqs, ids=[m.id for m in committed], last_seq=max(seqs)
    )


def _envelope(message: WebSocketMessage) -> dict[str, Any]:
    """An envelope as the document ``JSONBytes`` writes (the fields of the model)."""
    return dict(message)


@router.get("/tasks/{task_id:id}/events", response_model=EventPage, summary="A task's event log")
async def task_events(
    task_id: TaskId,
    services: ServicesDep,
    since: Annotated[
        int, Query(ge=0, le=MAX_SEQ, description="Return events with seq > since.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    types: Annotated[str | None, Query(description="Comma-separated event types.")] = None,
) -> Response:
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else []
    head, events = await services.events.history(task_id, since=since, limit=limit, types=wanted)
    return JSONBytes(
        {
            "task_id": task_id,
            "events": [_envelope(m) for m in events],
            "first_seq": head.first_seq,
            "last_seq": head.last_seq,
        }
    )


@router.get("/events", response_model=list[WebSocketMessage], summary="Recent events")
async def recent_events(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    types: Annotated[str | None, Query(description="Comma-separated event types.")] = None,
    task_id: TaskId | None = None,
) -> Response:
    """The newest events across all tasks, oldest of them first."""
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else []
    events = await services.events.recent(limit=limit, types=wanted, task_id=task_id)
    return JSONBytes([_envelope(m) for m in events])


@router.get("/tasks/{task_id:id}/state", response_model=TaskStateOut, summary="Shared state")
async def task_state(task_id: TaskId, services: ServicesDep) -> Response:
    """The task's shared state document and its version (each snapshot or patch adds one)."""
    state = await services.events.state(task_id)
    return JSONBytes({"task_id": task_id, "version": state.version, "state": state.document})
