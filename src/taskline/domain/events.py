"""The event vocabulary and the envelope every event travels in, on every wire.

A *task event* belongs to one task's durable log and carries a per-task ``seq`` (1, 2, 3, ...
with no gaps, in commit order). *Connection messages* (``connection_established``,
``heartbeat``, ``error``, ``gap``, personal messages, queue notices) are not logged and have
``seq = None``.

Each event type has a data schema (:data:`DATA_SCHEMAS`); :func:`validate_data` checks a
payload against it and names the bad field. Every member of an event's data is a storable JSON
value (:mod:`taskline.domain.json_bounds`), checked before the schema.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from taskline.domain.errors import InvalidInputError
from taskline.domain.json_bounds import (
    JsonBoundsError,
    check_container,
    check_storable,
    scalar_problem,
)
from taskline.domain.models import Fraction
from taskline.domain.status import AgentStatus

__all__ = [
    "AGUI_DATA_KEY",
    "CONNECTION_EVENTS",
    "DATA_SCHEMAS",
    "LOGGED_EVENTS",
    "REQUEST_EVENTS",
    "SERVER_ONLY_EVENTS",
    "STATUS_EVENTS",
    "ConnectionInfo",
    "EventIn",
    "WebSocketEventType",
    "WebSocketMessage",
    "check_data_members",
    "validate_data",
]


class WebSocketEventType(StrEnum):
    """Every event type Taskline knows. The spec's values are kept verbatim."""

    # connection
    CONNECTION_ESTABLISHED = "connection_established"
    CONNECTION_CLOSED = "connection_closed"
    HEARTBEAT = "heartbeat"
    PONG = "pong"
    ERROR = "error"
    GAP = "gap"
    PERSONAL_MESSAGE = "personal_message"
    QUEUE_OVERFLOW = "queue_overflow"
    QUEUE_EXPIRED = "queue_expired"
    # task life
    TASK_CREATED = "task_created"
    TASK_STARTED = "task_started"
    TASK_UPDATED = "task_updated"
    TASK_PAUSED = "task_paused"
    TASK_RESUMED = "task_resumed"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    TASK_DELETED = "task_deleted"
    SUBTASK_UPDATED = "subtask_updated"
    # agent work (AG-UI foundation)
    MESSAGE_START = "message.start"
    MESSAGE_DELTA = "message.delta"
    MESSAGE_END = "message.end"
    TOOL_CALL_START = "tool_call.start"
    TOOL_CALL_ARGS = "tool_call.args"
    TOOL_CALL_END = "tool_call.end"
    TOOL_CALL_RESULT = "tool_call.result"
    STATE_SNAPSHOT = "state.snapshot"
    STATE_PATCH = "state.patch"
    STEP_START = "step.start"
    STEP_END = "step.end"
    AGENT_STATUS_CHANGE = "agent_status_change"
    PROGRESS_UPDATE = "progress_update"
    CONFIDENCE_UPDATE = "confidence_update"
    CUSTOM = "custom"
    # requests: an agent asks a person (see taskline.domain.requests); data: the Request
    REQUEST_OPENED = "request.opened"
    REQUEST_ANSWERED = "request.answered"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_CANCELLED = "request.cancelled"


E = WebSocketEventType

#: Types that are never stored in a task's log.
CONNECTION_EVENTS = frozenset(
    {
        E.CONNECTION_ESTABLISHED,
        E.CONNECTION_CLOSED,
        E.HEARTBEAT,
        E.PONG,
        E.GAP,
        E.PERSONAL_MESSAGE,
        E.QUEUE_OVERFLOW,
        E.QUEUE_EXPIRED,
    }
)
#: Types a task's log may hold (``error`` may be logged by an agent reporting a failure).
LOGGED_EVENTS = frozenset(set(E) - CONNECTION_EVENTS)
#: Types of the events that log what happened to a request (their data: the whole Request).
REQUEST_EVENTS = frozenset(
    {E.REQUEST_OPENED, E.REQUEST_ANSWERED, E.REQUEST_EXPIRED, E.REQUEST_CANCELLED}
)
#: Logged types only the server itself writes (from REST changes, requests); publishers may
#: not send them.
SERVER_ONLY_EVENTS = frozenset({E.TASK_CREATED, E.TASK_DELETED}) | REQUEST_EVENTS

#: Task status each status event moves the task to.
STATUS_EVENTS: dict[WebSocketEventType, str] = {
    E.TASK_STARTED: "in_progress",
    E.TASK_RESUMED: "in_progress",
    E.TASK_PAUSED: "paused",
    E.TASK_COMPLETED: "completed",
    E.TASK_FAILED: "failed",
    E.TASK_CANCELLED: "cancelled",
}


class _Data(BaseModel):
    """Base of event payload schemas: unknown keys are kept (agents may add context)."""

    model_config = ConfigDict(extra="allow")


class _Empty(_Data):
    pass


class TaskLifeData(_Data):
    reason: str | None = None
    result: JsonValue | None = None
    error: str | None = None


class TaskChangeData(_Data):
    task: dict[str, JsonValue] | None = None
    changes: list[str] = Field(default_factory=list)


class SubtaskData(_Data):
    subtask_id: str
    section_id: str | None = None
    done: bool | None = None
    title: str | None = None


class MessageStartData(_Data):
    message_id: Annotated[str, Field(min_length=1, max_length=200)]
    role: Literal["assistant", "user", "system", "developer"] = "assistant"


class MessageDeltaData(_Data):
    message_id: Annotated[str, Field(min_length=1, max_length=200)]
    delta: str


class MessageEndData(_Data):
    message_id: Annotated[str, Field(min_length=1, max_length=200)]


class ToolCallStartData(_Data):
    tool_call_id: Annotated[str, Field(min_length=1, max_length=200)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    args: JsonValue | None = None
    parent_message_id: str | None = None


class ToolCallArgsData(_Data):
    tool_call_id: Annotated[str, Field(min_length=1, max_length=200)]
    delta: str


class ToolCallEndData(_Data):
    tool_call_id: Annotated[str, Field(min_length=1, max_length=200)]
    name: str | None = None
    result: JsonValue | None = None
    error: str | None = None
    duration_ms: Annotated[float, Field(ge=0)] | None = None


class ToolCallResultData(_Data):
    tool_call_id: Annotated[str, Field(min_length=1, max_length=200)]
    content: JsonValue
    message_id: str | None = None


class StateSnapshotData(_Data):
    snapshot: JsonValue
    version: int | None = None


class PatchOperation(BaseModel):
    """One RFC 6902 operation: ``value`` is required by ``add``, ``replace`` and ``test``,
    ``from`` (a string) by ``move`` and ``copy``. Other members — ``from`` on an ``add``, say
    — are ignored (RFC 6902 §4) and not stored."""

    model_config = ConfigDict(extra="ignore")

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str
    value: JsonValue = None
    from_: Any = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _required_members(self) -> "PatchOperation":
        if self.op in ("add", "replace", "test") and "value" not in self.model_fields_set:
            raise ValueError(f"{self.op!r} needs a 'value' member")
        if self.op in ("move", "copy") and not isinstance(self.from_, str):
            raise ValueError(f"{self.op!r} needs a 'from' member (a JSON Pointer)")
        return self

    @model_serializer(mode="wrap")
    def _used_members(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if self.op not in ("add", "replace", "test"):
            dumped.pop("value", None)
        if self.op not in ("move", "copy"):
            dumped.pop("from", None)
        dumped.pop("from_", None)
        return dumped


class StatePatchData(_Data):
    #: an empty patch is a valid no-op (RFC 6902): it is logged and bumps the version
    patch: Annotated[list[PatchOperation], Field(max_length=10_000)]
    version: int | None = None


class StepData(_Data):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class AgentStatusData(_Data):
    agent_id: str
    status: AgentStatus
    previous: AgentStatus | None = None


class ProgressData(_Data):
    progress: Fraction
    message: str | None = None
    confidence: Fraction | None = None


class ConfidenceData(_Data):
    confidence: Fraction


class ErrorData(_Data):
    message: str
    code: str | None = None


class CustomData(_Data):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    value: JsonValue = None


DATA_SCHEMAS: dict[WebSocketEventType, type[_Data]] = {
    E.TASK_CREATED: TaskChangeData,
    E.TASK_UPDATED: TaskChangeData,
    E.TASK_DELETED: TaskChangeData,
    E.TASK_STARTED: TaskLifeData,
    E.TASK_PAUSED: TaskLifeData,
    E.TASK_RESUMED: TaskLifeData,
    E.TASK_COMPLETED: TaskLifeData,
    E.TASK_FAILED: TaskLifeData,
    E.TASK_CANCELLED: TaskLifeData,
    E.SUBTASK_UPDATED: SubtaskData,
    E.MESSAGE_START: MessageStartData,
    E.MESSAGE_DELTA: MessageDeltaData,
    E.MESSAGE_END: MessageEndData,
    E.TOOL_CALL_START: ToolCallStartData,
    E.TOOL_CALL_ARGS: ToolCallArgsData,
    E.TOOL_CALL_END: ToolCallEndData,
    E.TOOL_CALL_RESULT: ToolCallResultData,
    E.STATE_SNAPSHOT: StateSnapshotData,
    E.STATE_PATCH: StatePatchData,
    E.STEP_START: StepData,
    E.STEP_END: StepData,
    E.AGENT_STATUS_CHANGE: AgentStatusData,
    E.PROGRESS_UPDATE: ProgressData,
    E.CONFIDENCE_UPDATE: ConfidenceData,
    E.ERROR: ErrorData,
    E.CUSTOM: CustomData,
}


#: Where an event ingested as AG-UI keeps the original AG-UI event (see ``taskline.agui``).
AGUI_DATA_KEY = "agui"

#: How a member of an event's data holds stored values: ``"value"`` is one (the common case);
#: ``"object"`` is an object whose members are (``task_*`` events' ``task``); ``"operations"``
#: a list of objects whose members are (a ``state.patch``'s ``patch``: each operation's
#: ``value``); ``"agui"`` an AG-UI event whose members are, its ``delta``/``patch`` being
#: operations.
_Shape = Literal["value", "object", "operations", "agui"]


def _shape(event_type: WebSocketEventType, key: str, data: dict[str, Any]) -> _Shape:
    if key == AGUI_DATA_KEY:
        return "agui"
    if key == "task" and DATA_SCHEMAS.get(event_type) is TaskChangeData:
        return "object"
    if key == "patch" and event_type == E.STATE_PATCH:
        return "operations"
    if (
        key == "value"
        and event_type == E.CUSTOM
        and str(data.get("name", "")).startswith("agui:")  # an AG-UI-only event, kept whole
    ):
        return "agui"
    return "value"


def check_data_members(
    members: dict[str, Any], *, field_prefix: str, shapes: dict[str, _Shape] | None = None
) -> None:
    """Check that every member of ``members`` holds storable JSON values (``shapes`` says how,
    per key; default: each member is one value).

    Raises:
        InvalidInputError: naming the member (``{field_prefix}.{key}``, down to the operation
            or the member of a wrapper) and the bound it breaks.
    """
    for key, value in members.items():
        _check_member(value, f"{field_prefix}.{key}", (shapes or {}).get(key, "value"))


def _check_member(value: Any, field: str, shape: _Shape) -> None:
    expected = list if shape == "operations" else dict
    if shape == "value" or not isinstance(value, expected):
        _check_value(value, field)
        return
    _check_container(value, field)
    if isinstance(value, list):  # operations
        for index, operation in enumerate(value):
            _check_member(operation, f"{field}.{index}", "object")
        return
    for key, member in value.items():
        inner: _Shape = "operations" if shape == "agui" and key in ("delta", "patch") else "value"
        _check_member(member, f"{field}.{key}", inner)


def _check_value(value: Any, field: str) -> None:
    try:
        check_storable(value)
    except JsonBoundsError as exc:
        raise InvalidInputError(f"{field}: {exc}", field=field) from None


def _check_container(value: dict[str, Any] | list[Any], field: str) -> None:
    try:
        check_container(value)
    except JsonBoundsError as exc:
        raise InvalidInputError(f"{field}: {exc}", field=field) from None


def validate_data(
    event_type: WebSocketEventType, data: dict[str, Any], *, field_prefix: str = "data"
) -> dict[str, Any]:
    """Check that every member of ``data`` holds storable JSON values, then check ``data``
    against the schema of ``event_type``; return it normalised.

    Raises:
        InvalidInputError: naming the first bad field as ``{field_prefix}.{path}``.
    """
    for key, value in data.items():
        if isinstance(value, dict | list):
            _check_member(value, f"{field_prefix}.{key}", _shape(event_type, key, data))
        elif (problem := scalar_problem(value)) is not None:  # the common case, quickly
            raise InvalidInputError(
                f"{field_prefix}.{key}: {problem}", field=f"{field_prefix}.{key}"
            )
    schema = DATA_SCHEMAS.get(event_type, _Empty)
    try:
        model = schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in (field_prefix, *first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(f"{path}: {message}", field=path) from None
    return model.model_dump(mode="json", by_alias=True, exclude_none=False)


class WebSocketMessage(BaseModel):
    """The envelope. ``seq`` is the per-task log position (``None`` for connection messages).

    ``run_id``/``parent_run_id``/``agent_id`` attribute the event to the run and the agent
    that produced it, so two agents (or an agent and its sub-agent) on one task stay apart.
    """

    id: str
    seq: int | None = None
    task_id: str | None = None
    event_type: WebSocketEventType
    data: dict[str, JsonValue] = Field(default_factory=dict)
    timestamp: datetime
    source: str | None = None
    #: who made it (``person:…``, ``agent:…``, ``token:…``, ``system:…`` or ``anonymous``;
    #: see :mod:`taskline.domain.actors`); None for connection messages and older events
    actor: str | None = None
    client_id: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    agent_id: str | None = None


def _in_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class EventIn(BaseModel):
    """An event as a publisher sends it; the server assigns ``seq`` (and ``id``/``timestamp``
    when absent). Re-sending the same ``id`` is idempotent."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    event_type: WebSocketEventType
    #: JSON values; each member is checked (storable, then the type's schema) by
    #: :func:`validate_data` when the event is recorded, which names the field it refuses
    data: dict[str, Any] = Field(default_factory=dict)
    #: when it happened; must carry a time zone (stored and sent on in UTC)
    timestamp: Annotated[AwareDatetime, AfterValidator(_in_utc)] | None = None
    source: Annotated[str, Field(max_length=200)] | None = None
    client_id: Annotated[str, Field(max_length=80)] | None = None
    run_id: Annotated[str, Field(max_length=80)] | None = None
    parent_run_id: Annotated[str, Field(max_length=80)] | None = None
    agent_id: Annotated[str, Field(max_length=80)] | None = None


class ConnectionInfo(BaseModel):
    """What the server knows about one live WebSocket connection."""

    client_id: str
    task_id: str | None
    connected_at: datetime
    last_seen: datetime
    user_agent: str | None = None
    remote_address: str | None = None
    messages_sent: int = 0
    outbox_depth: int = 0
    #: bytes queued for the connection and not yet written
    bytes_pending: int = 0
    #: "live", or "replaying" while it reads the log (after connecting with since, or behind)
    state: str = "live"
    #: times it fell behind while live and caught up from the log
    caught_up_from_log: int = 0
