"""Taskline events ⇄ AG-UI events, using the official ``ag_ui.core`` models.

=====================================  ==============================================
Taskline ``event_type``                AG-UI ``type``
=====================================  ==============================================
``task_started``                       ``RUN_STARTED`` (threadId = task id, runId = run id)
``task_completed``                     ``RUN_FINISHED`` (``result``)
``task_failed``                        ``RUN_ERROR`` (``message`` = the error)
``message.start`` / ``.delta`` /      ``TEXT_MESSAGE_START`` / ``_CONTENT`` / ``_END``
``.end``
``tool_call.start`` / ``.args`` /      ``TOOL_CALL_START`` / ``_ARGS`` / ``_END`` / ``_RESULT``
``.end`` / ``.result``                 (a start with ``args`` also gives one ``_ARGS``; an end
                                       with ``result`` also gives a ``_RESULT``)
``state.snapshot`` / ``state.patch``   ``STATE_SNAPSHOT`` / ``STATE_DELTA``
``step.start`` / ``step.end``          ``STEP_STARTED`` / ``STEP_FINISHED``
``error`` with ``unserved: true``      ``RUN_STARTED`` then ``RUN_ERROR`` (a run nobody served,
                                       logged by the AG-UI gateway)
``request.answered`` of a run          ``RUN_STARTED`` of that run (it goes on after its
                                       interrupt; ignored by a viewer whose run is open)
anything else (``progress_update``,    ``CUSTOM`` with ``name`` = the Taskline event type and
``confidence_update``, ``task_paused``, ``value`` = its data
``agent_status_change``, …)
=====================================  ==============================================

Going the other way (:func:`from_agui`, :func:`attribute_runs`), each AG-UI event becomes the
Taskline event of the table (``CUSTOM`` named after a Taskline type becomes that type);
AG-UI-only events (reasoning, activity, sub-agents, messages snapshots, raw, chunks, other
customs) and a ``RUN_FINISHED`` whose outcome is an interrupt (the run stopped to ask: it
completes nothing) become ``custom`` events named ``agui:<TYPE>``. Every ingested AG-UI
event also keeps its original JSON (camelCase, without ``timestamp``) under ``data["agui"]``,
and is emitted back from it, so an AG-UI stream that is stored and replayed is identical
apart from timestamps. Ingested events carry their run on the envelope (``run_id``, and
``parent_run_id`` from a ``RUN_STARTED``'s ``parentRunId``): the run the publisher names,
else the ``runId`` of the batch's last ``RUN_STARTED`` before them.
"""

import json
import logging
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    CustomEvent,
    Event,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from taskline.domain.errors import InvalidInputError
from taskline.domain.events import (
    AGUI_DATA_KEY,
    EventIn,
    WebSocketEventType,
    WebSocketMessage,
    check_data_members,
)
from taskline.domain.json_bounds import readable

__all__ = [
    "AGUI_KEY",
    "TERMINAL_TYPES",
    "attribute_runs",
    "event_json",
    "from_agui",
    "is_interrupt",
    "parse_agui",
    "sse_frame",
    "to_agui",
]

logger = logging.getLogger("taskline.agui")

E = WebSocketEventType
AGUI_KEY = AGUI_DATA_KEY  #: where an ingested event's original AG-UI JSON is kept in ``data``
#: The AG-UI event types that end a run: nothing of that run may follow them.
TERMINAL_TYPES = frozenset({"RUN_FINISHED", "RUN_ERROR"})
_EVENTS: TypeAdapter[Any] = TypeAdapter(Event)
_MAX_RUN_ID = 80  #: the longest run id an envelope holds (``EventIn.run_id``)
_ADAPTER_CACHE: dict[str, TypeAdapter[Any]] = {}


def parse_agui(raw: dict[str, Any], *, field: str = "event") -> BaseEvent:
    """Validate one AG-UI event (camelCase JSON) with the official models.

    Raises:
        InvalidInputError: naming the bad field as ``{field}.{camelCase path}``.
    """
    try:
        event: BaseEvent = _EVENTS.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(p) for p in first["loc"]]
        # the union adds the discriminator value as the first location part
        if location and location[0] == raw.get("type"):
            location = location[1:]
        path = ".".join([field, *location])
        raise InvalidInputError(f"{path}: {first['msg']}", field=path) from None
    return event


def event_json(event: BaseEvent) -> str:
    """The JSON text of an AG-UI event, camelCase, as the official encoder writes it.

    Values stored before the bounds of :mod:`taskline.domain.json_bounds` that cannot be
    written (nested too deep for the encoder, say) have those parts replaced by a
    ``{"taskline_unreadable": …}`` marker, with a warning logged: the event is still sent.
    """
    try:
        return event.model_dump_json(by_alias=True)
    except PydanticSerializationError:
        fixed: dict[str, Any] = {}
        problems: list[str] = []
        for name in type(event).model_fields:
            value, found = readable(getattr(event, name))
            if found:
                fixed[name] = value
                problems.extend(found)
        logger.warning("an AG-UI %s event holds values no encoder writes: %s", event.type, problems)
        return event.model_copy(update=fixed).model_dump_json(by_alias=True)


def sse_frame(event: BaseEvent) -> str:
    """One server-sent event holding ``event`` (what ``ag_ui.encoder.EventEncoder`` writes)."""
    return f"data: {event_json(event)}\n\n"


def _dump(event: BaseEvent) -> dict[str, Any]:
    dumped: dict[str, Any] = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
    dumped.pop("timestamp", None)
    return dumped


def from_agui(raw: dict[str, Any], *, field: str = "event") -> EventIn:
    """Translate one AG-UI event into the Taskline event to store (see the module table).

    Each member of the AG-UI event must hold storable JSON values (``delta``: operations
    whose values are), like the Taskline event's data it becomes.

    Raises:
        InvalidInputError: naming the bad field as ``{field}.{camelCase path}``.
    """
    check_data_members(
        raw, field_prefix=field, shapes={"delta": "operations", "patch": "operations"}
    )
    event = parse_agui(raw, field=field)
    original = _dump(event)
    kind, data = _native(event, original)
    data[AGUI_KEY] = original
    return EventIn(event_type=kind, data=data)


def is_interrupt(event: BaseEvent) -> bool:
    """Whether ``event`` is a ``RUN_FINISHED`` whose outcome is an interrupt (the run stopped
    to ask for something: AG-UI 1.0 interrupts)."""
    outcome = getattr(event, "outcome", None)
    return isinstance(event, RunFinishedEvent) and getattr(outcome, "type", None) == "interrupt"


def attribute_runs(events: list[EventIn], run_id: str | None = None) -> list[EventIn]:
    """Put each ingested event's run on its envelope: ``run_id`` when given, else the
    ``runId`` of the last ``RUN_STARTED`` before it in ``events`` (and that start's
    ``parentRunId``); events before any start, with no ``run_id``, stay without one.

    Raises:
        InvalidInputError: a ``RUN_STARTED``'s ``runId`` or ``parentRunId`` is longer than an
            envelope's run id may be (80 characters), naming ``events.N.runId``.
    """
    current, parent = run_id, None
    stamped: list[EventIn] = []
    for index, event in enumerate(events):
        original = event.data.get(AGUI_KEY)
        if isinstance(original, dict) and original.get("type") == "RUN_STARTED":
            current = run_id or str(original.get("runId") or "") or None
            parent = original.get("parentRunId")
            for name, value in (("runId", current), ("parentRunId", parent)):
                if isinstance(value, str) and len(value) > _MAX_RUN_ID:
                    field = f"events.{index}.{name}"
                    raise InvalidInputError(
                        f"{field}: at most {_MAX_RUN_ID} characters, got {len(value)}",
                        field=field,
                    )
        if current is None or event.run_id is not None:
            stamped.append(event)
            continue
        update: dict[str, Any] = {"run_id": current}
        if isinstance(parent, str) and parent and event.parent_run_id is None:
            update["parent_run_id"] = parent
        stamped.append(event.model_copy(update=update))
    return stamped


def _native(event: BaseEvent, wire: dict[str, Any]) -> tuple[WebSocketEventType, dict[str, Any]]:
    """The Taskline type and data of an AG-UI event (``wire`` is its JSON form)."""
    match event:
        case RunStartedEvent():
            return E.TASK_STARTED, {"thread_id": event.thread_id, "run_id": event.run_id}
        case RunFinishedEvent() if is_interrupt(event):
            # the run stopped to ask, it did not complete: kept whole (see agui_ingest)
            return E.CUSTOM, {"name": "agui:RUN_FINISHED", "value": wire}
        case RunFinishedEvent():
            return E.TASK_COMPLETED, {"result": event.result}
        case RunErrorEvent():
            return E.TASK_FAILED, {"error": event.message, "code": event.code}
        case TextMessageStartEvent():
            # an absent role means assistant (AG-UI 1.0)
            role = event.role or "assistant"
            return E.MESSAGE_START, {"message_id": event.message_id, "role": role}
        case TextMessageContentEvent():
            return E.MESSAGE_DELTA, {"message_id": event.message_id, "delta": event.delta}
        case TextMessageEndEvent():
            return E.MESSAGE_END, {"message_id": event.message_id}
        case ToolCallStartEvent():
            return E.TOOL_CALL_START, {
                "tool_call_id": event.tool_call_id,
                "name": event.tool_call_name,
                "parent_message_id": event.parent_message_id,
            }
        case ToolCallArgsEvent():
            return E.TOOL_CALL_ARGS, {"tool_call_id": event.tool_call_id, "delta": event.delta}
        case ToolCallEndEvent():
            return E.TOOL_CALL_END, {"tool_call_id": event.tool_call_id}
        case ToolCallResultEvent():
            return E.TOOL_CALL_RESULT, {
                "tool_call_id": event.tool_call_id,
                "message_id": event.message_id,
                "content": wire["content"],
            }
        case StateSnapshotEvent():
            return E.STATE_SNAPSHOT, {"snapshot": wire.get("snapshot")}
        case StateDeltaEvent():
            return E.STATE_PATCH, {"patch": wire["delta"]}
        case StepStartedEvent():
            return E.STEP_START, {"name": event.step_name}
        case StepFinishedEvent():
            return E.STEP_END, {"name": event.step_name}
        case CustomEvent() if event.name in E.__members__.values() and event.name != "custom":
            value = event.value if isinstance(event.value, dict) else {"value": event.value}
            return E(event.name), dict(value)
        case _:
            return E.CUSTOM, {"name": f"agui:{event.type.value}", "value": wire}


def to_agui(message: WebSocketMessage) -> list[BaseEvent]:
    """Translate one stored Taskline event into AG-UI events (usually one).

    Events that came in as AG-UI are given back exactly as they came (``data["agui"]``).
    """
    data = dict(message.data)
    timestamp = int(message.timestamp.timestamp() * 1000)
    original = data.get(AGUI_KEY)
    if isinstance(original, dict):
        event = parse_agui({**original, "timestamp": timestamp})
        return [event]
    return [e.model_copy(update={"timestamp": timestamp}) for e in _translate(message, data)]


def _translate(message: WebSocketMessage, data: dict[str, Any]) -> list[BaseEvent]:
    kind = message.event_type
    task_id = message.task_id or ""
    run_id = message.run_id or f"run_{task_id}"
    if kind == E.TASK_STARTED:
        return [
            RunStartedEvent(
                thread_id=task_id,
                run_id=run_id,
                parent_run_id=message.parent_run_id,
                protocol_version=PROTOCOL_VERSION,
            )
        ]
    if kind == E.TASK_COMPLETED:
        return [RunFinishedEvent(thread_id=task_id, run_id=run_id, result=data.get("result"))]

    if kind == E.TASK_FAILED:
        return [RunErrorEvent(message=str(data.get("error") or data.get("reason") or "failed"))]
    if kind == E.REQUEST_ANSWERED and isinstance(data.get("run_id"), str) and data["run_id"]:
        # the run that asked goes on: a viewer whose view the interrupt closed sees it
        # start again (one whose run is still open ignores it: see projection.RunView)
        return [
            RunStartedEvent(
                thread_id=task_id, run_id=data["run_id"], protocol_version=PROTOCOL_VERSION
            )
        ]
    if kind == E.ERROR and data.get("unserved") is True and message.run_id:
        # a run nobody served (logged by the AG-UI gateway): a run of its own that failed
        return [
            RunStartedEvent(thread_id=task_id, run_id=run_id, protocol_version=PROTOCOL_VERSION),
            RunErrorEvent(message=str(data.get("message") or "unserved"), code=data.get("code")),
        ]
    if kind == E.MESSAGE_START:
        role = data.get("role") or "assistant"
        return [TextMessageStartEvent(message_id=data["message_id"], role=role)]
    if kind == E.MESSAGE_DELTA:
        return [TextMessageContentEvent(message_id=data["message_id"], delta=data["delta"])]
    if kind == E.MESSAGE_END:
        return [TextMessageEndEvent(message_id=data["message_id"])]
    if kind == E.TOOL_CALL_START:
        events: list[BaseEvent] = [
            ToolCallStartEvent(
                tool_call_id=data["tool_call_id"],
                tool_call_name=data["name"],
                parent_message_id=data.get("parent_message_id"),
            )
        ]
        if data.get("args") is not None:
            delta = json.dumps(data["args"], separators=(",", ":"))
            events.append(ToolCallArgsEvent(tool_call_id=data["tool_call_id"], delta=delta))
        return events
    if kind == E.TOOL_CALL_ARGS:
        return [ToolCallArgsEvent(tool_call_id=data["tool_call_id"], delta=data["delta"])]
    if kind == E.TOOL_CALL_END:
        events = [ToolCallEndEvent(tool_call_id=data["tool_call_id"])]
        outcome = data.get("result") if data.get("error") is None else {"error": data["error"]}
        if outcome is not None:
            events.append(_result(message, data["tool_call_id"], outcome))
        return events
    if kind == E.TOOL_CALL_RESULT:
        return [_result(message, data["tool_call_id"], data["content"], data.get("message_id"))]
    if kind == E.STATE_SNAPSHOT:
        return [StateSnapshotEvent(snapshot=data.get("snapshot"))]
    if kind == E.STATE_PATCH:
        return [StateDeltaEvent(delta=data["patch"])]
    if kind == E.STEP_START:
        return [StepStartedEvent(step_name=data["name"])]
    if kind == E.STEP_END:
        return [StepFinishedEvent(step_name=data["name"])]
    if kind == E.CUSTOM and str(data.get("name", "")).startswith("agui:"):
        return [parse_agui(data["value"])]
    return [CustomEvent(name=kind.value, value=data)]


def _result(
    message: WebSocketMessage, tool_call_id: str, content: Any, message_id: str | None = None
) -> ToolCallResultEvent:
    text = content if isinstance(content, str) else json.dumps(content, separators=(",", ":"))
    return ToolCallResultEvent(
        message_id=message_id or f"{message.id}_result", tool_call_id=tool_call_id, content=text
    )
