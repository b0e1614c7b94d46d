"""The OpenAPI document (``/openapi.json``), as strict as the server.

FastAPI derives the operations, their parameters and their bodies from the routes. This module
adds what it cannot see, so the document says everything an operation can answer:

- **Problem details.** Every error status an operation can give, each as
  ``application/problem+json`` (:data:`PROBLEM_SCHEMA`): 400 (a ``Host`` this server does not
  answer to; a bad export format), 401 (no credential, or a refused one: on open paths too),
  403 (the role may not; a foreign ``Origin`` on a change), 404 (an unknown id), 409, 412 and
  428 (``If-Match``), 413 (a body over the limit), 415 (a body that is not JSON), 422 (invalid
  input, naming the fields in ``errors``), 429 (a rate limit, with ``Retry-After`` and the
  ``RateLimit`` fields) and 503 (the database did not answer). :func:`problem_statuses` is
  the rule, ``tests/test_openapi.py`` holds every route to it.
- **What FastAPI cannot derive**: the bodies read by hand (the import takes an
  :class:`~taskline.export.json_export.ExportDocument`, an AG-UI run a ``RunAgentInput``, a
  publish one event, a list, or ``{"events": [...]}``), the media types of the downloads and
  of the event streams, and the headers of the answers (``ETag``, ``Location``,
  ``X-Total-Count``, ``Content-Disposition``).
- **Links** from each created resource to the operations on it (``createTask`` → read,
  change, delete, …), which stateful testing follows.

The document is built once per application, on first request, and kept.
"""

from typing import Any, Literal

from ag_ui.core import RunAgentInput
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from taskline.api.doors import OPEN_PATHS
from taskline.api.problems import PROBLEM_MEDIA_TYPE
from taskline.domain.events import EventIn
from taskline.domain.problems import PROBLEM_TYPE_BASE
from taskline.export import SUPPORTED_FORMATS
from taskline.export.formats import MEDIA_TYPES
from taskline.export.json_export import ExportDocument
from taskline.service.agent_session import MAX_BATCH

__all__ = ["PROBLEM_SCHEMA", "build_document", "install_openapi", "problem_statuses"]

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REF = "#/components/schemas/"

#: RFC 9457 problem details, as every error answer carries them.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details. Members beyond these depend on the problem "
    "(allowed on a refused transition, current_version on a stale If-Match, …).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": f"about:blank, or {PROBLEM_TYPE_BASE}<slug>",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path."},
        "errors": {
            "type": "array",
            "description": "422: each invalid field, named by its path (sections.1.title).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_WHY = {
    400: "The Host header names another server (DNS rebinding), or the request is malformed.",
    401: "No credential where one is needed, or a token or session that is refused.",
    403: "The role may not do this, or a change comes from a page on a foreign Origin.",
    405: "The path names another resource, which does not take this method (Allow lists "
    "those it takes): a segment that is no id, such as /api/v1/tasks/import.",
    404: "No such task (or section, subtask, agent) — an id that cannot be one included.",
    409: "The change conflicts with what is stored: a status transition the state machine "
    "refuses (allowed lists the possible ones), an id that exists already, a run in progress.",
    412: "If-Match names a version the task is no longer at (current_version; ETag: the "
    "current one).",
    413: "The body is larger than the server's limit (TASKLINE_MAX_BODY_BYTES).",
    415: "The body is not JSON (application/json or …+json).",
    422: "Invalid input: errors names each field.",
    428: "The server requires If-Match on changes (TASKLINE_REQUIRE_IF_MATCH).",
    429: "A rate limit: retry after Retry-After seconds.",
    503: "The database did not answer.",
}

_INTEGER = {"schema": {"type": "integer", "minimum": 0}}
_TEXT = {"schema": {"type": "string"}}
_ETAG = {
    "description": "The task's version, quoted: send it back as If-Match.",
    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
}
_PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    405: {"Allow": {"description": "The methods the path takes.", "required": True, **_TEXT}},
    401: {"WWW-Authenticate": {"description": 'Bearer realm="taskline"', **_TEXT}},
    412: {"ETag": _ETAG},
    429: {
        "Retry-After": {"description": "Whole seconds to wait.", **_INTEGER},
        "RateLimit-Policy": {"description": 'The policy, e.g. "write";q=100;w=10', **_TEXT},
        "RateLimit": {"description": 'What is left, e.g. "write";r=0;t=1', **_TEXT},
    },
}

#: Operations (by operation id) that can give a status the general rule does not add.
_SPECIFIC: dict[str, frozenset[int]] = {
    "export_all": frozenset({400}),  # an unknown format (problem type unsupported-format)
    "export_one": frozenset({400}),
    "recent_events": frozenset({404}),  # ?task_id= of no task
}

#: The ``ETag`` of the task on these operations' successful answers.
_TAGGED = frozenset(
    {
        "create_task",
        "get_task",
        "replace_task",
        "patch_task",
        "pause",
        "resume",
        "cancel",
        "add_section",
        "rename_section",
        "delete_section",
        "reorder_sections",
        "add_subtask",
        "reorder_subtasks",
        "update_subtask",
        "toggle_subtask",
        "delete_subtask",
    }
)
#: What schemathesis (and any reader) sees of one Server-Sent Event: its fields, as text (the
#: ``data`` of each is the JSON the route's documentation describes).
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
_STREAMS = frozenset({"stream_task", "watch_agui", "run_agui"})


def problem_statuses(path: str, method: str, operation: dict[str, Any]) -> dict[int, str]:
    """The error statuses ``method`` on ``path`` can answer, with why (see the module doc),
    from what the operation takes (its ``parameters`` and ``requestBody``)."""
    statuses = {400, 401, 503}
    unsafe = method.upper() in _UNSAFE
    where = {parameter["in"] for parameter in operation.get("parameters", [])}
    headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
    if unsafe or path not in OPEN_PATHS:
        statuses.add(403)
    if "path" in where:
        # 405: a segment that is no id but names another resource (/api/v1/tasks/import)
        statuses.update({404, 405})
    if where or unsafe:
        statuses.add(422)
    if unsafe:
        statuses.update({409, 413, 415, 429})
    if "If-Match" in headers:
        statuses.update({412, 428})
    statuses.update(_SPECIFIC.get(operation.get("operationId", ""), ()))
    return {status: _WHY[status] for status in sorted(statuses)}


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_document` as the application's OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` with everything this module adds."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                _no_null(parameter["schema"])
            _document_answers(operation["operationId"], operation, schemas)
            statuses = problem_statuses(path, method, operation)
            for declared in operation.get("responses", {}):  # a route's own, with its reason
                if int(declared) >= 400 and int(declared) not in statuses:
                    statuses[int(declared)] = _WHY.get(int(declared), "An error.")
            _document_problems(operation, statuses)
    _add_links(doc)
    return doc


def _no_null(schema: dict[str, Any]) -> None:
    """An optional parameter is left out, never null (a header or query string has no null):
    ``anyOf: [{string}, {null}]`` becomes the string's schema, keeping its pattern."""
    options = schema.get("anyOf")
    if not options:
        return
    kept = [option for option in options if option != {"type": "null"}]
    if len(kept) == 1:
        del schema["anyOf"]
        schema.update(kept[0])
        if schema.get("default", ...) is None:
            del schema["default"]


def _document_problems(operation: dict[str, Any], statuses: dict[int, str]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, why in statuses.items():
        answer = responses.get(str(status), {})
        answer["description"] = answer.get("description") or why
        if answer["description"] in {"Validation Error", "Successful Response"}:
            answer["description"] = why
        answer["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _REF + "Problem"}}}
        if status in _PROBLEM_HEADERS:
            answer["headers"] = _PROBLEM_HEADERS[status]
        responses[str(status)] = answer


def _add_model(
    schemas: dict[str, Any],
    model: type[BaseModel],
    name: str,
    mode: Literal["validation", "serialization"] = "validation",
) -> dict[str, str]:
    """Put ``model``'s JSON Schema (by alias) into the components, as ``name``."""
    schema = model.model_json_schema(by_alias=True, ref_template=_REF + "{model}", mode=mode)
    for key, value in schema.pop("$defs", {}).items():
        schemas.setdefault(key, value)
    schemas[name] = schema
    return {"$ref": _REF + name}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _document_answers(name: str, operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    success = next(
        (code for code in ("200", "201", "204") if code in responses), None
    )  # every operation has one
    answer: dict[str, Any] = responses[success] if success else {}
    headers: dict[str, Any] = {}
    if name in _TAGGED:
        headers["ETag"] = _ETAG
    if name in {"create_task", "create_agent"}:
        headers["Location"] = {"description": "Where the new resource is.", **_TEXT}
    if name == "list_tasks":
        headers["X-Total-Count"] = {"description": "Tasks matching, on every page.", **_INTEGER}
    if name in {"export_all", "export_one"}:
        headers["Content-Disposition"] = {
            "description": 'attachment; filename="taskline-<scope>-<UTC time>.<ext>"',
            **_TEXT,
        }
        document = _add_model(schemas, ExportDocument, "ExportDocumentOut", "serialization")
        answer["content"] = {
            media.split(";")[0]: {"schema": document}
            if key == "json"
            else {"schema": {"type": "string", "format": "binary" if key == "zip" else None}}
            for key, media in MEDIA_TYPES.items()
        }
        for content in answer["content"].values():
            content["schema"] = {k: v for k, v in content["schema"].items() if v is not None}
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "format":
                parameter["schema"] = {"type": "string", "enum": list(SUPPORTED_FORMATS)}
    if name in _STREAMS:
        answer["content"] = {"text/event-stream": {"schema": _SSE_EVENT}}
    if name == "import_tasks":
        operation["requestBody"] = _json_body(_add_model(schemas, ExportDocument, "ExportDocument"))
    if name == "run_agui":
        run_input = _add_model(schemas, RunAgentInput, "RunAgentInput")
        schemas["RunAgentInput"]["properties"]["runId"].update(minLength=1, maxLength=80)
        operation["requestBody"] = _json_body(run_input)
    if name == "publish_events":
        event = _add_model(schemas, EventIn, "EventIn")
        batch = {"type": "array", "items": event, "minItems": 1, "maxItems": MAX_BATCH}
        operation["requestBody"] = _json_body(
            {
                "description": "One event, a list, or {'events': [...]}",
                "oneOf": [
                    event,
                    batch,
                    {
                        "type": "object",
                        "required": ["events"],
                        "properties": {"events": batch},
                        "additionalProperties": False,
                    },
                ],
            }
        )
    if name == "next_task":
        responses["204"].pop("content", None)
    if headers:
        answer["headers"] = {**answer.get("headers", {}), **headers}


def _link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "description": description, "parameters": parameters}


_TASK = {"task_id": "$response.body#/id"}
_SECTION = {"task_id": "$request.path.task_id", "section_id": "$response.body#/id"}
_SUBTASK = {"task_id": "$request.path.task_id", "subtask_id": "$response.body#/id"}
_AGENT = {"agent_id": "$response.body#/id"}

#: (operation id, status) -> the operations its answer leads to, with their parameters.
_LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("create_task", "201"): {
        "GetTask": ("get_task", _TASK),
        "ReplaceTask": ("replace_task", _TASK),
        "PatchTask": ("patch_task", _TASK),
        "DeleteTask": ("delete_task", _TASK),
        "AddSection": ("add_section", _TASK),
        "PublishEvents": ("publish_events", _TASK),
        "TaskEvents": ("task_events", _TASK),
        "TaskState": ("task_state", _TASK),
        "PostMessage": ("post_message", _TASK),
        "ListMessages": ("list_messages", _TASK),
        "ExportTask": ("export_one", _TASK),
        "Pause": ("pause", _TASK),
        "Resume": ("resume", _TASK),
        "Cancel": ("cancel", _TASK),
    },
    ("add_section", "201"): {
        "RenameSection": ("rename_section", _SECTION),
        "DeleteSection": ("delete_section", _SECTION),
        "AddSubtask": ("add_subtask", _SECTION),
        "ReorderSubtasks": ("reorder_subtasks", _SECTION),
    },
    ("add_subtask", "201"): {
        "UpdateSubtask": ("update_subtask", _SUBTASK),
        "ToggleSubtask": ("toggle_subtask", _SUBTASK),
        "DeleteSubtask": ("delete_subtask", _SUBTASK),
    },
    ("create_agent", "201"): {
        "GetAgent": ("get_agent", _AGENT),
        "PatchAgent": ("patch_agent", _AGENT),
        "DeleteAgent": ("delete_agent", _AGENT),
        "NextTask": ("next_task", _AGENT),
    },
}


def _add_links(doc: dict[str, Any]) -> None:
    by_id = {
        operation["operationId"]: operation
        for path in doc["paths"].values()
        for operation in path.values()
    }
    for (operation_id, status), links in _LINKS.items():
        answer = by_id[operation_id]["responses"][status]
        answer["links"] = {
            name: _link(target, f"{target} of the resource this created", **parameters)
            for name, (target, parameters) in links.items()
        }
