"""Pydantic models of the task board: what is stored, what clients send, what they receive.

Read models (``Task``, ``Section``, ``Subtask``, ``Agent``, ``Message``) describe stored
resources. Write models (``TaskCreate``, ``TaskReplace``, ``TaskPatch``, ...) describe request
bodies; they forbid unknown fields so a misspelt field is an error, never a silent drop, and
the JSON values they carry (``result``, ``metadata``) must be storable
(:mod:`taskline.domain.json_bounds`). Read models take what is stored as it is.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    model_validator,
)

from taskline.domain.ids import ID_PATTERN, ID_SCHEMA_PATTERN
from taskline.domain.json_bounds import StorableJson, StorableObject
from taskline.domain.status import AgentStatus, Priority, TaskStatus

__all__ = [
    "Agent",
    "AgentCreate",
    "AgentPatch",
    "AuthorKind",
    "Fraction",
    "Lease",
    "Message",
    "MessageCreate",
    "Reorder",
    "Section",
    "SectionCreate",
    "SectionPatch",
    "SectionReplace",
    "Subtask",
    "SubtaskCreate",
    "SubtaskPatch",
    "SubtaskReplace",
    "Tag",
    "Task",
    "TaskCreate",
    "TaskPage",
    "TaskPatch",
    "TaskReplace",
    "Title",
    "utc_now",
]

MAX_TITLE = 500
MAX_TEXT = 100_000
MAX_TAGS = 50


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC, truncated to milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _strip_nonempty(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be empty or only whitespace")
    return stripped


def _check_id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError("must look like 'prefix_abc123' (lowercase letters, digits)")
    return value


#: JSON Schema of "not empty or only whitespace" (Python's ``\S`` is what ``str.strip`` keeps).
_NOT_BLANK = {"pattern": r"\S"}
Title = Annotated[
    str, Field(max_length=MAX_TITLE, json_schema_extra=_NOT_BLANK), AfterValidator(_strip_nonempty)
]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Tag = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra=_NOT_BLANK),
    AfterValidator(_strip_nonempty),
]
#: Numbers and booleans in bodies are strict, as JSON Schema is: ``"0.5"`` is not a number,
#: ``0`` is not ``false``.
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
ResourceId = Annotated[
    str,
    Field(max_length=80, json_schema_extra={"pattern": ID_SCHEMA_PATTERN}),
    AfterValidator(_check_id),
]


def _dedupe(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_dedupe)]


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- read models ----------------------------------------------------------------------------


class Subtask(_Read):
    id: str
    title: str
    done: bool
    notes: str
    position: int


class Section(_Read):
    id: str
    title: str
    position: int
    subtasks: list[Subtask]


class Lease(_Read):
    """Who holds a claimed task, and until when (see :mod:`taskline.domain.leases`)."""

    agent_id: str = Field(description="The agent holding the task.")
    token: int = Field(
        description="The fencing token: bumped by every claim of the task, never reused."
    )
    expires_at: datetime = Field(
        description="When the lease ends unless renewed (by any event the holder publishes)."
    )


class Task(_Read):
    id: str
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    progress: float
    confidence: float | None
    assigned_agent_id: str | None
    tags: list[str]
    result: JsonValue | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    version: int = Field(
        default=1,
        description="Bumped by every change to the task (its fields, tags, sections, "
        "subtasks, and what events change); the ETag is this number, quoted.",
    )
    sections: list[Section]
    lease: Lease | None = Field(
        default=None, description="The agent holding the task and until when (None: nobody)."
    )
    needs_input: bool = Field(
        default=False,
        description="True while the task has an open request (a question or an approval "
        "waiting for a person): GET /api/v1/requests?task_id=… lists them.",
    )


class TaskPage(BaseModel):
    """One page of a task listing; ``total`` counts every match, not just this page."""

    items: list[Task]
    total: int
    limit: int
    offset: int


class Agent(_Read):
    id: str
    name: str
    kind: str
    status: AgentStatus
    current_task_id: str | None
    last_seen_at: datetime | None
    # Stored rows call it ``metadata_`` (``metadata`` is reserved by SQLAlchemy).
    metadata: dict[str, JsonValue] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime
    updated_at: datetime


class AuthorKind(StrEnum):
    """Who wrote a message in a task's thread."""

    HUMAN = "human"
    AGENT = "agent"
    SYSTEM = "system"


class Message(_Read):
    id: str
    task_id: str
    author_kind: AuthorKind
    author: str
    content: str
    created_at: datetime
    actor: str | None = Field(
        default=None,
        description="Who posted it, as the server knows them (person:ana, agent:agent_x); "
        "author is what the poster called themselves.",
    )


# --- write models ---------------------------------------------------------------------------


class SubtaskCreate(_Write):
    title: Title
    done: StrictBool = False
    notes: Text = ""


class SectionCreate(_Write):
    title: Title
    subtasks: list[SubtaskCreate] = Field(default_factory=list, max_length=1000)


class TaskCreate(_Write):
    """Body of ``POST /tasks/``. Only ``title`` is required."""

    title: Title
    description: Text = ""
    status: TaskStatus = TaskStatus.PENDING
    priority: Priority = Priority.MEDIUM
    progress: Fraction = 0.0
    confidence: Fraction | None = None
    assigned_agent_id: ResourceId | None = None
    tags: Tags = Field(default_factory=list)
    result: StorableJson | None = None
    sections: list[SectionCreate] = Field(default_factory=list, max_length=200)


#: Marks, in the JSON Schema, what a replacement carries only as it was read (``readOnly``:
#: clients need not send it).
_READ_ONLY: dict[str, Any] = {"readOnly": True}


class SubtaskReplace(_Write):
    """A subtask of a replaced task: with ``id``, that subtask of the task, kept (moved here
    if it was in another section); without, a new one."""

    id: ResourceId | None = None
    title: Title
    done: StrictBool = False
    notes: Text = ""
    position: int | None = Field(
        default=None,
        strict=True,
        description="Read-only: the order of the list decides (may be sent as read).",
        json_schema_extra=_READ_ONLY,
    )


class SectionReplace(_Write):
    """A section of a replaced task: with ``id``, that section of the task, kept; without, a
    new one."""

    id: ResourceId | None = None
    title: Title
    position: int | None = Field(
        default=None,
        strict=True,
        description="Read-only: the order of the list decides (may be sent as read).",
        json_schema_extra=_READ_ONLY,
    )
    subtasks: list[SubtaskReplace] = Field(default_factory=list, max_length=1000)


class TaskReplace(_Write):
    """Body of ``PUT /tasks/{id}``: replaces the task's fields.

    Omitted fields take their defaults, except ``status`` (omitted: unchanged; a change must be
    a transition the state machine allows) and ``sections`` (omitted: unchanged; given: the
    whole structure is replaced; sections and subtasks that carry the ``id`` of one of the
    task's keep it, the others are new).

    The document ``GET`` returns is accepted as it is: its read-only fields (``READ_ONLY``,
    and the sections' and subtasks' ``position``) are ignored when they are the task's, and
    refused (422, naming the field) when they are not. ``version`` is the version the
    document was read at: another one is a 412, like a stale ``If-Match``.
    """

    #: Fields the server sets; a replacement may carry them only unchanged.
    READ_ONLY: ClassVar[tuple[str, ...]] = (
        "id",
        "version",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
    )

    title: Title
    description: Text = ""
    status: TaskStatus | None = None
    priority: Priority = Priority.MEDIUM
    progress: Fraction = 0.0
    confidence: Fraction | None = None
    assigned_agent_id: ResourceId | None = None
    tags: Tags = Field(default_factory=list)
    result: StorableJson | None = None
    sections: list[SectionReplace] | None = None
    # read-only: see READ_ONLY
    id: str | None = Field(default=None, max_length=80, json_schema_extra=_READ_ONLY)
    version: int | None = Field(
        default=None, ge=1, lt=2**31, strict=True, json_schema_extra=_READ_ONLY
    )
    created_at: datetime | None = Field(default=None, json_schema_extra=_READ_ONLY)
    updated_at: datetime | None = Field(default=None, json_schema_extra=_READ_ONLY)
    started_at: datetime | None = Field(default=None, json_schema_extra=_READ_ONLY)
    completed_at: datetime | None = Field(default=None, json_schema_extra=_READ_ONLY)
    #: ignored whatever it holds: the lease changes only by claims, renewals, releases and
    #: expiry, and moves on with every heartbeat (a document read a moment ago is still good)
    lease: JsonValue = Field(
        default=None,
        description="Ignored: leases change only by claiming and releasing.",
        json_schema_extra=_READ_ONLY,
    )
    #: ignored whatever it holds, like ``lease``: requests set it, and it changes whenever
    #: one is opened or answered
    needs_input: JsonValue = Field(
        default=None,
        description="Ignored: it follows the task's open requests.",
        json_schema_extra=_READ_ONLY,
    )

    def sent_fields(self) -> set[str]:
        """The writable fields the client sent (what the ``task_updated`` event lists)."""
        return set(self.model_fields_set) - set(self.READ_ONLY) - {"lease", "needs_input"}

    def writable(self) -> dict[str, Any]:
        """The writable fields besides ``status``, ``sections`` and ``tags``, with defaults."""
        return self.model_dump(
            exclude={"status", "sections", "tags", "lease", "needs_input", *self.READ_ONLY}
        )


def _nulls_refused(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """In a patch's JSON Schema, the ``_not_nullable`` fields may be left out, not be null."""
    properties = schema.get("properties", {})
    for name in getattr(model, "_not_nullable", ()):
        field = properties.get(name)
        if not field or "anyOf" not in field:
            continue
        options = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        if field.get("default", ...) is None:
            del field["default"]
        if len(options) == 1:
            field.update(options[0])
        else:
            field["anyOf"] = options


class _Patch(_Write):
    """A partial update: only the fields present change; ``_not_nullable`` ones refuse null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_nulls_refused)

    _not_nullable: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in self._not_nullable:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """Return the fields the client actually sent."""
        return self.model_dump(include=self.model_fields_set)


class TaskPatch(_Patch):
    """Body of ``PATCH /tasks/{id}``: only the fields present change (``null`` clears)."""

    title: Title | None = None
    description: Text | None = None
    status: TaskStatus | None = None
    priority: Priority | None = None
    progress: Fraction | None = None
    confidence: Fraction | None = None
    assigned_agent_id: ResourceId | None = None
    tags: Tags | None = None
    result: StorableJson | None = None

    _not_nullable: ClassVar[tuple[str, ...]] = (
        "title",
        "description",
        "status",
        "priority",
        "progress",
        "tags",
    )


class SectionPatch(_Write):
    title: Title


class SubtaskPatch(_Write):
    title: Title | None = None
    done: StrictBool | None = None
    notes: Text | None = None
    section_id: ResourceId | None = Field(
        default=None, description="Move the subtask to the end of another section of the task."
    )


class Reorder(_Write):
    """A new order: every id of the collection exactly once."""

    ids: list[ResourceId] = Field(max_length=1000)


class AgentCreate(_Write):
    id: ResourceId | None = Field(default=None, description="Optional stable id (agent_...).")
    name: Title
    kind: Annotated[str, Field(min_length=1, max_length=64)] = "generic"
    status: AgentStatus = AgentStatus.IDLE
    metadata: StorableObject = Field(default_factory=dict)


class AgentPatch(_Patch):
    name: Title | None = None
    kind: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    status: AgentStatus | None = None
    current_task_id: ResourceId | None = None
    metadata: StorableObject | None = None

    _not_nullable: ClassVar[tuple[str, ...]] = ("name", "kind", "status", "metadata")


class MessageCreate(_Write):
    author_kind: AuthorKind = AuthorKind.HUMAN
    author: Annotated[str, Field(min_length=1, max_length=200)] = "user"
    content: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
