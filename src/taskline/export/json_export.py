"""The JSON export: a complete, re-importable document of the board, and its parser.

The document is the only format that holds everything needed to recreate the board exactly
(ids, timestamps, positions, statuses, results, message threads)::

    {"format": "taskline.export", "version": 1, "exported_at": "2026-...Z",
     "taskline_version": "0.1.0", "count": 2, "agents": [...],
     "tasks": [{...task fields..., "messages": [...]}]}

Writing and parsing go through the same pydantic models, so a document that is parsed and
dumped again comes out byte for byte identical (datetimes included).
"""

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

import orjson
from pydantic import AliasChoices, AwareDatetime, BaseModel, Field, ValidationError

import taskline
from taskline.domain.errors import InvalidInputError
from taskline.domain.json_bounds import StorableJson, StorableObject, parse_json
from taskline.domain.models import Agent, Fraction, Message, ResourceId, Task
from taskline.export.bundle import ExportBundle

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportDocument",
    "ExportedAgent",
    "ExportedTask",
    "build_document",
    "dump_document",
    "parse_json_export",
    "render_json",
]

EXPORT_FORMAT: Final = "taskline.export"
EXPORT_VERSION: Final = 1


class ImportedMessage(Message):
    """A message of an export; its ids must be ids."""

    id: ResourceId
    task_id: ResourceId


class ExportedTask(Task):
    """A task as it appears in an export: the task itself plus its thread, oldest first.

    Unlike the read model, ``progress`` and ``confidence`` are checked to lie in ``[0, 1]`` and
    ``result`` to be storable (:mod:`taskline.domain.json_bounds`), since an imported document
    is untrusted input.
    """

    id: ResourceId
    progress: Fraction
    confidence: Fraction | None
    assigned_agent_id: ResourceId | None
    result: StorableJson | None
    messages: list[ImportedMessage] = Field(default_factory=list)


class ExportedAgent(Agent):
    """An agent as it appears in an export; its ``metadata`` must be storable on import."""

    id: ResourceId
    current_task_id: ResourceId | None
    metadata: StorableObject = Field(validation_alias=AliasChoices("metadata", "metadata_"))


class ExportDocument(BaseModel):
    """A parsed JSON export. Unknown top-level keys are ignored (newer writers may add some).

    Validate documents with :func:`parse_json_export`, which also checks the header first and
    the cross-references (``count``, unique ids, messages belonging to their task).
    """

    format: Literal["taskline.export"]
    version: Literal[1]
    exported_at: AwareDatetime
    taskline_version: str
    count: int = Field(ge=0)
    agents: list[ExportedAgent]
    tasks: list[ExportedTask]


def _task_fields(task: Task) -> dict[str, Any]:
    # Only the fields of Task: an ExportedTask given as input must not bring its messages twice.
    return {name: getattr(task, name) for name in Task.model_fields}


def build_document(bundle: ExportBundle) -> ExportDocument:
    """Return the export document of ``bundle``, without validating it again.

    The bundle's objects were validated when they were built; re-validating here would make an
    export fail on data the board already holds. So a task stored with, say, a progress of
    1.5 is still exported, and it is :func:`parse_json_export` that refuses it on import.
    """
    tasks = [
        ExportedTask.model_construct(
            **_task_fields(task),
            messages=bundle.messages_of(task.id),  # type: ignore[arg-type]  # not validated
        )
        for task in bundle.tasks
    ]
    return ExportDocument.model_construct(
        format=EXPORT_FORMAT,
        version=EXPORT_VERSION,
        exported_at=bundle.exported_at,
        taskline_version=taskline.__version__,
        count=len(tasks),
        agents=[ExportedAgent.model_construct(**dict(agent)) for agent in bundle.agents],
        tasks=tasks,
    )


def dump_document(document: ExportDocument) -> bytes:
    """Serialise ``document`` as UTF-8 JSON indented by two spaces.

    orjson writes it; should it refuse (the bundles of ``Transfer.bundle`` have their results
    made writable already, see :func:`taskline.domain.json_bounds.readable`), the standard
    library writes the same structure (same layout).
    """
    data = document.model_dump(mode="json")
    try:
        return orjson.dumps(data, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:
        return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def render_json(bundle: ExportBundle) -> bytes:
    """Return the JSON export of ``bundle`` (see the module docstring for its shape)."""
    return dump_document(build_document(bundle))


def parse_json_export(raw: bytes | str | Mapping[str, Any]) -> ExportDocument:
    """Parse and validate a JSON export (raw bytes or text, or an already decoded object).

    The header is checked first, so a document from another tool or a future version is
    reported as such rather than through whatever else differs in it. Raw input is read by
    :func:`~taskline.domain.json_bounds.parse_json`: integers are exact, so one beyond 64 bits
    is refused by name, like any value that is not storable.

    Raises:
        InvalidInputError: the input is not JSON (``field`` is ``None``), is not an object, has
            another ``format`` or a ``version`` other than 1, or fails validation. The message
            starts with the path of the first bad field, e.g.
            ``tasks.0.progress: Input should be less than or equal to 1``, and ``field`` is
            that path.
    """
    data = _decode(raw)
    _check_header(data)
    try:
        document = ExportDocument.model_validate(data)
        if isinstance(raw, bytes | str):
            # and strictly, as JSON Schema reads it: a time is an ISO 8601 string (not a
            # number), a boolean true or false (not 0). Second: the values are known to be
            # storable (nested at most 64 deep), so pydantic's JSON parser takes them all.
            document = ExportDocument.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _from_validation_error(exc) from exc
    _check_references(document)
    return document


def _decode(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(raw, bytes | str):
        try:
            loaded = parse_json(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"the export is not valid JSON: {exc}") from exc
    else:
        loaded = raw
    if not isinstance(loaded, Mapping):
        raise InvalidInputError(f"the export must be a JSON object, not {type(loaded).__name__}")
    return dict(loaded)


def _check_header(data: Mapping[str, Any]) -> None:
    if data.get("format") != EXPORT_FORMAT:
        found = repr(data["format"]) if "format" in data else "nothing"
        raise InvalidInputError(
            f"format: expected {EXPORT_FORMAT!r}, found {found}; this is not a Taskline export",
            field="format",
        )
    version = data.get("version")
    # ``True == 1`` in Python, so the type is checked too.
    if type(version) is not int or version != EXPORT_VERSION:
        found = repr(version) if "version" in data else "nothing"
        raise InvalidInputError(
            f"version: expected {EXPORT_VERSION}, found {found}; "
            f"this Taskline reads export version {EXPORT_VERSION} only",
            field="version",
        )


def _from_validation_error(exc: ValidationError) -> InvalidInputError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = ".".join(str(part) for part in first["loc"])
    detail = f"{path}: {first['msg']}" if path else str(first["msg"])
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problems)"
    return InvalidInputError(detail, field=path or None)


def _check_references(document: ExportDocument) -> None:
    if document.count != len(document.tasks):
        raise InvalidInputError(
            f"count: the document says {document.count} tasks but holds {len(document.tasks)}",
            field="count",
        )
    _check_unique("agents", [agent.id for agent in document.agents])
    _check_unique("tasks", [task.id for task in document.tasks])
    for task_index, task in enumerate(document.tasks):
        for message_index, message in enumerate(task.messages):
            if message.task_id != task.id:
                path = f"tasks.{task_index}.messages.{message_index}.task_id"
                raise InvalidInputError(
                    f"{path}: message belongs to {message.task_id!r}, not to {task.id!r}",
                    field=path,
                )


def _check_unique(collection: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            path = f"{collection}.{index}.id"
            raise InvalidInputError(f"{path}: duplicate id {item_id!r}", field=path)
        seen.add(item_id)
