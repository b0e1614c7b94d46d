"""The MCP toolset: what each tool takes (a strict pydantic model whose JSON Schema is the
tool's ``inputSchema``), what it does through the application layer, and what it answers.

Every tool acts as the caller's :class:`~taskline.domain.actors.Actor` through
:mod:`taskline.service`, so access rules, ``If-Match`` versions and event logging are the
REST API's. A refusal raises the service's :class:`~taskline.domain.errors.TasklineError`;
:mod:`taskline.mcp.server` turns it into a tool error.

Adding a tool is a model, an ``async def`` taking ``(Services, Actor, model)`` and one
:class:`ToolSpec` in :data:`TOOLS` (``on_task=True`` when it takes a ``task_id``: its calls
are then recorded on that task).
"""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from taskline.domain.actors import Actor, ActorKind
from taskline.domain.errors import InvalidInputError
from taskline.domain.events import EventIn, WebSocketEventType
from taskline.domain.models import AuthorKind, MessageCreate, SectionCreate, SubtaskCreate
from taskline.domain.preconditions import IfMatch
from taskline.domain.queries import TaskQuery
from taskline.domain.requests import (
    Request,
    RequestAnswer,
    RequestKind,
    RequestSpec,
    RequestStatus,
    Risk,
)
from taskline.domain.status import TaskStatus, check_transition
from taskline.service import Services

__all__ = ["SOURCE", "TOOLS", "ToolSpec", "input_schema", "publish"]

#: What events made by MCP tools record as their ``source``.
SOURCE = "mcp"

E = WebSocketEventType
TaskId = Annotated[str, Field(min_length=1, max_length=80)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
RequestId = Annotated[str, Field(min_length=1, max_length=80)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _OnTask(_Args):
    task_id: TaskId


class FindTasks(_Args):
    status: list[TaskStatus] | None = Field(None, max_length=6)
    tag: str | None = Field(None, max_length=100)
    agent: str | None = Field(None, max_length=80, description="assigned agent id")
    text: str | None = Field(None, max_length=200, description="search in title and description")
    limit: int = Field(10, ge=1, le=25)
    offset: int = Field(0, ge=0)


class GetTask(_OnTask):
    events: int = Field(10, ge=0, le=50, description="how many recent events")


class ReportProgress(_OnTask):
    progress: Fraction
    message: str | None = Field(None, max_length=2000)
    confidence: Fraction | None = None


class CheckItem(_OnTask):
    subtask_id: str = Field(min_length=1, max_length=80)
    done: bool = True
    if_version: int | None = Field(
        None, ge=1, description="only if the task is still at the version last answered"
    )


class AddSubtasks(_OnTask):
    titles: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        min_length=1, max_length=50
    )
    section_id: str | None = Field(
        None, max_length=80, description="default: the last section (made if none)"
    )


class PostMessage(_OnTask):
    content: Text


class Approval(_Args):
    name: str = Field(min_length=1, max_length=200)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    reason: str | None = None
    risk: Risk = Risk.MEDIUM


class AskPerson(_OnTask):
    question: Text
    choices: list[str] | None = Field(None, max_length=50)
    response_schema: dict[str, JsonValue] | None = None
    approval: Approval | None = None
    wait_seconds: float = Field(25, ge=0, le=50)


class GetRequest(_Args):
    request_id: RequestId
    wait_seconds: float = Field(0, ge=0, le=50)


class AnswerRequest(_Args):
    request_id: RequestId
    answer: str | None = Field(None, description="text; JSON if it has a response_schema")
    decision: Literal["approve", "reject"] | None = None
    arguments: dict[str, JsonValue] | None = Field(None, description="approve with these")
    comment: str | None = None


class CompleteTask(_OnTask):
    result: dict[str, JsonValue] | None = Field(None, description="becomes the task's result")


class FailTask(_OnTask):
    reason: Text


class ClaimNextTask(_Args):
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20, description="any of these"
    )
    assigned: Literal["any", "mine", "unassigned"] = Field(
        "any", description="any = yours or nobody's"
    )
    lease_seconds: float | None = Field(None, ge=1, le=86_400)
    agent_id: str | None = Field(None, max_length=80, description="a person claims for this agent")


class ReleaseTask(_OnTask):
    pass


# --- what each tool does --------------------------------------------------------------------


async def find_tasks(services: Services, actor: Actor, args: FindTasks) -> JsonValue:
    page = await services.tasks.page(
        TaskQuery(
            statuses=tuple(args.status or ()),
            tag=args.tag,
            agent_id=args.agent,
            search=args.text,
            limit=args.limit,
            offset=args.offset,
        )
    )
    return {
        "total": page["total"],
        "tasks": [
            {
                key: task[key]
                for key in ("id", "title", "status", "priority", "progress", "assigned_agent_id")
            }
            | {"tags": task["tags"]}
            for task in page["items"]
        ],
    }


async def get_task(services: Services, actor: Actor, args: GetTask) -> JsonValue:
    task = await services.tasks.document(args.task_id)
    for key in ("created_at", "updated_at", "started_at", "completed_at"):
        task.pop(key, None)
    messages = await services.steering.messages(args.task_id)
    task["messages"] = [
        {"author": m.author, "author_kind": m.author_kind.value, "content": m.content}
        for m in messages[-10:]
    ]
    if args.events:
        head = await services.events.head(args.task_id)
        _, events = await services.events.history(
            args.task_id, since=max(0, head.last_seq - args.events), limit=args.events, types=()
        )
        task["events"] = [
            {"seq": e.seq, "type": e.event_type.value, "actor": e.actor, "data": _brief(e.data)}
            for e in events
        ]
    return task


def _brief(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data without what makes it long: a task's document (``task_*`` events carry
    one), a tool call's result (an earlier ``get_task``'s holds earlier events) and nulls."""
    return {
        key: value
        for key, value in data.items()
        if value is not None and key not in ("task", "result")
    }


async def report_progress(services: Services, actor: Actor, args: ReportProgress) -> JsonValue:
    task = await services.tasks.get(args.task_id)
    data: dict[str, Any] = {"progress": args.progress, "message": args.message}
    if args.confidence is not None:
        data["confidence"] = args.confidence
    events = [EventIn(event_type=E.PROGRESS_UPDATE, data=data)]
    if task.status == TaskStatus.PENDING:  # reporting work starts it
        events.insert(0, EventIn(event_type=E.TASK_STARTED, data={}))
    await publish(services, actor, args.task_id, events)
    return await _summary(services, args.task_id)


async def check_item(services: Services, actor: Actor, args: CheckItem) -> JsonValue:
    if_match = None if args.if_version is None else IfMatch(versions=frozenset({args.if_version}))
    changed = await services.tasks.update_subtask(
        args.task_id,
        args.subtask_id,
        title=None,
        done=args.done,
        notes=None,
        section_id=None,
        actor=actor,
        if_match=if_match,
    )
    return {"subtask_id": changed.value.id, "done": changed.value.done, "version": changed.version}


async def add_subtasks(services: Services, actor: Actor, args: AddSubtasks) -> JsonValue:
    section_id = args.section_id
    if section_id is None:
        task = await services.tasks.get(args.task_id)
        if task.sections:
            section_id = task.sections[-1].id
        else:
            made = await services.tasks.add_section(
                args.task_id, SectionCreate(title="Checklist"), position=None, actor=actor
            )
            section_id = made.value.id
    added: list[JsonValue] = []
    version = 0
    for title in args.titles:
        subtask = await services.tasks.add_subtask(
            args.task_id, section_id, SubtaskCreate(title=title), position=None, actor=actor
        )
        added.append({"id": subtask.value.id, "title": subtask.value.title})
        version = subtask.version
    return {"section_id": section_id, "subtasks": added, "version": version}


async def post_message(services: Services, actor: Actor, args: PostMessage) -> JsonValue:
    return await _post(services, actor, args.task_id, args.content)


async def ask_person(services: Services, actor: Actor, args: AskPerson) -> JsonValue:
    approval = args.approval
    spec = _parsed(
        RequestSpec,
        {
            "kind": RequestKind.QUESTION if approval is None else RequestKind.APPROVAL,
            "question": args.question,
            "choices": args.choices,
            "response_schema": args.response_schema,
            "action": None if approval is None else approval.model_dump(),
        },
    )
    request = await services.requests.open(actor, args.task_id, spec)
    return _request(await _wait(services, actor, request, args.wait_seconds))


async def get_request(services: Services, actor: Actor, args: GetRequest) -> JsonValue:
    request = await services.requests.get(actor, args.request_id)
    return _request(await _wait(services, actor, request, args.wait_seconds))


async def answer_request(services: Services, actor: Actor, args: AnswerRequest) -> JsonValue:
    members = args.model_dump(exclude={"request_id"}, exclude_unset=True)
    if args.answer is not None:
        request = await services.requests.get(actor, args.request_id)
        if request.response_schema is not None:  # the answer is JSON, sent as its text
            try:
                members["answer"] = json.loads(args.answer)
            except ValueError as exc:
                raise InvalidInputError(f"answer: not JSON: {exc}", field="answer") from None
    reply = _parsed(RequestAnswer, members)
    return _request(await services.requests.answer(actor, args.request_id, reply))


async def _wait(services: Services, actor: Actor, request: Request, seconds: float) -> Request:
    """Wait up to ``seconds`` for the open request to be answered (the service's long poll,
    asked again until the time is spent: one wait lasts at most its ``max_wait``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while request.status == RequestStatus.OPEN and services.requests.max_wait > 0:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        request = await services.requests.wait(actor, request.id, remaining)
    return request


_M = TypeVar("_M", bound=BaseModel)


def _parsed(model: type[_M], values: dict[str, Any]) -> _M:
    """``values`` as ``model``; what it refuses is an :class:`InvalidInputError` (a tool error)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(f"{where}: {message}", field=where) from None


def _request(request: Request) -> dict[str, JsonValue]:
    """What a tool says of a request: its outcome, or that it is open (poll get_request)."""
    answer: dict[str, JsonValue] = {"request_id": request.id, "status": request.status.value}
    if request.status == RequestStatus.OPEN:
        answer["note"] = "No answer yet: call get_request with wait_seconds later."
        return answer
    if request.status == RequestStatus.ANSWERED:
        answer["answer"] = request.answer
    elif request.status == RequestStatus.APPROVED:
        assert request.action is not None
        edited = request.arguments
        answer["arguments"] = edited if edited is not None else request.action.arguments
    answer["comment"] = request.comment
    return answer


async def complete_task(services: Services, actor: Actor, args: CompleteTask) -> JsonValue:
    task = await services.tasks.get(args.task_id)
    events = [EventIn(event_type=E.TASK_COMPLETED, data={"result": args.result})]
    if task.status == TaskStatus.PAUSED:
        events.insert(0, EventIn(event_type=E.TASK_RESUMED, data={"reason": "completed"}))
    else:  # a refusal said as the REST API says it (409); publishing checks it again
        check_transition(task.id, task.status, TaskStatus.COMPLETED)
    await publish(services, actor, args.task_id, events)
    return await _summary(services, args.task_id)


async def fail_task(services: Services, actor: Actor, args: FailTask) -> JsonValue:
    task = await services.tasks.get(args.task_id)
    check_transition(task.id, task.status, TaskStatus.FAILED)
    events = [EventIn(event_type=E.TASK_FAILED, data={"error": args.reason})]
    await publish(services, actor, args.task_id, events)
    return await _summary(services, args.task_id)


async def claim_next_task(services: Services, actor: Actor, args: ClaimNextTask) -> JsonValue:
    task = await services.claims.claim(
        actor,
        agent_id=args.agent_id,
        tags=args.tags,
        assigned=args.assigned,
        lease_seconds=args.lease_seconds,
    )
    if task is None:
        return {"task": None, "note": "No pending task matches; try again later."}
    return {
        "task": {
            "id": task.id,
            "title": task.title,
            "description": task.description,
            "priority": task.priority.value,
            "tags": list(task.tags),
            "version": task.version,
        },
        "lease": None if task.lease is None else task.lease.model_dump(mode="json"),
        "note": "Yours until the lease ends; any progress you report renews it.",
    }


async def release_task(services: Services, actor: Actor, args: ReleaseTask) -> JsonValue:
    task = await services.claims.release(actor, args.task_id)
    return {"task_id": task.id, "status": task.status.value, "version": task.version}


# --- helpers --------------------------------------------------------------------------------


async def publish(services: Services, actor: Actor, task_id: str, events: list[EventIn]) -> None:
    """Publish as the caller, from ``mcp``, attributed to its agent when it is one."""
    if actor.kind == ActorKind.AGENT:
        events = [e.model_copy(update={"agent_id": actor.id}) for e in events]
    await services.events.publish(task_id, events, actor=actor, source=SOURCE)


async def _summary(services: Services, task_id: str) -> dict[str, JsonValue]:
    task = await services.tasks.get(task_id)
    return {
        "task_id": task.id,
        "status": task.status.value,
        "progress": task.progress,
        "confidence": task.confidence,
        "version": task.version,
    }


async def _post(services: Services, actor: Actor, task_id: str, content: str) -> dict[str, Any]:
    """Post to the task's thread as the agent the caller is (an MCP client is an agent, even
    one acting with a person's token; the message's ``actor`` says whose)."""
    body = MessageCreate(
        author_kind=AuthorKind.AGENT, author=actor.id or str(actor), content=content
    )
    message, delivered = await services.steering.post(task_id, body, actor=actor)
    return {"message_id": message.id, "delivered_to_agent": delivered}


# --- the toolset ----------------------------------------------------------------------------

Run = Callable[[Services, Actor, Any], Awaitable[JsonValue]]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, description, arguments and what it runs."""

    name: str
    description: str
    arguments: type[_Args]
    run: Run
    #: it takes a ``task_id``: each call is recorded on that task as a tool call
    on_task: bool = True


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "find_tasks",
        "List tasks (newest first), filtered by status, tag, assigned agent or text.",
        FindTasks,
        find_tasks,
        on_task=False,
    ),
    ToolSpec(
        "get_task",
        "One task: fields, checklist (sections and subtasks), recent messages and events.",
        GetTask,
        get_task,
    ),
    ToolSpec(
        "report_progress",
        "Report progress 0..1 with a message and confidence; starts a pending task.",
        ReportProgress,
        report_progress,
    ),
    ToolSpec("check_item", "Tick (or untick) a checklist subtask.", CheckItem, check_item),
    ToolSpec("add_subtasks", "Add checklist subtasks to a section.", AddSubtasks, add_subtasks),
    ToolSpec("post_message", "Post a message in the task's thread.", PostMessage, post_message),
    ToolSpec(
        "ask_person",
        "Ask a person a question, or to approve an action; waits for the answer.",
        AskPerson,
        ask_person,
    ),
    ToolSpec(
        "get_request",
        "A request's answer (or status open); may wait for it.",
        GetRequest,
        get_request,
        on_task=False,
    ),
    ToolSpec(
        "answer_request",
        "Answer a request (people only): answer, or decision to approve/reject an approval.",
        AnswerRequest,
        answer_request,
        on_task=False,
    ),
    ToolSpec(
        "complete_task",
        "Complete an in-progress task with its result.",
        CompleteTask,
        complete_task,
    ),
    ToolSpec("fail_task", "Fail an in-progress task, saying why.", FailTask, fail_task),
    ToolSpec(
        "claim_next_task",
        "Claim the most urgent pending task, with a lease (renewed by your progress).",
        ClaimNextTask,
        claim_next_task,
        on_task=False,
    ),
    ToolSpec(
        "release_task",
        "Give back a task you claimed (pending again).",
        ReleaseTask,
        release_task,
    ),
)


def input_schema(arguments: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments, lean: no pydantic ``title`` members (the property
    names say it), and an optional member is its type (not ``anyOf`` it or ``null``, with
    ``default: null``): being left out of ``required`` is what makes it optional. Every member
    costs a client's model tokens on every turn."""
    schema = arguments.model_json_schema()
    definitions = schema.pop("$defs", {})
    lean: dict[str, Any] = _lean(schema, definitions)
    return lean


def _lean(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_lean(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str):  # inlined: our models' definitions are small, not recursive
        target = definitions[reference.rsplit("/", 1)[-1]]
        node = {**{k: v for k, v in target.items() if k != "description"}, **node}
        del node["$ref"]
    choices = node.get("anyOf")
    if isinstance(choices, list) and {"type": "null"} in choices and len(choices) == 2:
        (kept,) = (c for c in choices if c != {"type": "null"})
        node = {**{k: v for k, v in node.items() if k != "anyOf"}, **kept}
        if "$ref" in kept:  # an optional model: inline it as well
            return _lean(node, definitions)
    if node.get("default", ...) is None:
        node = {k: v for k, v in node.items() if k != "default"}
    lean = {
        key: _lean(value, definitions)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }
    if lean.get("additionalProperties") == {}:  # any member: spelled true
        lean["additionalProperties"] = True
    return lean
