"""The REST API as :class:`~taskline.sdk._http.Call` builders, one function per endpoint.

Pure functions: they validate nothing the server validates (the server is the single judge
of input) and send nothing. Client faces wrap each one in a method that does the I/O.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from taskline.domain.models import Agent, Message, Section, Subtask, Task, TaskPage
from taskline.domain.requests import Request
from taskline.sdk._http import (
    Call,
    IfMatch,
    conditional,
    counts,
    download,
    json_object,
    jsonable,
    model,
    model_list,
    no_content,
    optional_model,
    path_id,
    seqs,
)
from taskline.sdk._models import (
    ClaimedTask,
    EventPage,
    IssuedToken,
    MessagePosted,
    TaskControl,
    TaskState,
)

__all__ = [
    "add_section",
    "add_subtask",
    "answer_request",
    "cancel_request",
    "claim",
    "control",
    "create_agent",
    "create_task",
    "create_token",
    "create_webhook",
    "delete_agent",
    "delete_section",
    "delete_subtask",
    "delete_task",
    "delete_webhook",
    "events",
    "export",
    "get_agent",
    "get_request",
    "get_task",
    "health",
    "import_tasks",
    "list_agents",
    "list_messages",
    "list_requests",
    "list_tasks",
    "list_webhooks",
    "next_task",
    "open_request",
    "post_message",
    "publish",
    "release",
    "rename_section",
    "renew_lease",
    "replace_task",
    "state",
    "test_webhook",
    "toggle_subtask",
    "update_agent",
    "update_subtask",
    "update_task",
    "webhook_deliveries",
]

#: The task commands people send to agents (``POST /api/v1/tasks/{id}/<command>``).
CONTROL_COMMANDS = frozenset({"pause", "resume", "cancel"})

TASKS = "/api/v1/tasks"
AGENTS = "/api/v1/agents"
WEBHOOKS = "/api/v1/webhooks"


def _task(task_id: str) -> str:
    return f"{TASKS}/{path_id(task_id)}"


def _agent(agent_id: str) -> str:
    return f"{AGENTS}/{path_id(agent_id)}"


def _body(fields: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = jsonable(dict(fields))
    return body


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", json_object)


def create_token(username: str, password: str, name: str | None) -> Call[IssuedToken]:
    body: dict[str, Any] = {"username": username, "password": password}
    if name is not None:
        body["name"] = name
    return Call("POST", "/api/v1/auth/token", model(IssuedToken), json=body)


def list_tasks(
    *,
    status: str | Iterable[str] | None,
    agent: str | None,
    tag: str | None,
    q: str | None,
    sort: str,
    limit: int,
    offset: int,
) -> Call[TaskPage]:
    params: dict[str, Any] = {"sort": sort, "limit": limit, "offset": offset}
    if status is not None:
        params["status"] = [status] if isinstance(status, str) else [str(s) for s in status]
    for name, value in (("agent", agent), ("tag", tag), ("q", q)):
        if value is not None:
            params[name] = value
    return Call("GET", f"{TASKS}/", model(TaskPage), params=params)


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", _task(task_id), model(Task))


def create_task(fields: Mapping[str, Any]) -> Call[Task]:
    return Call("POST", f"{TASKS}/", model(Task), json=_body(fields))


def update_task(task_id: str, changes: Mapping[str, Any], if_match: IfMatch = None) -> Call[Task]:
    return Call(
        "PATCH", _task(task_id), model(Task), json=_body(changes), headers=conditional(if_match)
    )


def replace_task(task_id: str, fields: Mapping[str, Any], if_match: IfMatch = None) -> Call[Task]:
    return Call(
        "PUT", _task(task_id), model(Task), json=_body(fields), headers=conditional(if_match)
    )


def delete_task(task_id: str, if_match: IfMatch = None) -> Call[None]:
    return Call("DELETE", _task(task_id), no_content, headers=conditional(if_match))


def export(fmt: str, task_id: str | None) -> Call[tuple[str, bytes]]:
    scope = f"{TASKS}/export" if task_id is None else f"{_task(task_id)}/export"
    fallback = f"{task_id or 'tasks'}.{fmt}"
    return Call("GET", f"{scope}/{path_id(fmt)}", download(fallback))


def import_tasks(data: bytes, mode: str) -> Call[dict[str, int]]:
    return Call(
        "POST",
        f"{TASKS}/import",
        counts,
        params={"mode": mode},
        content=data,
        headers={"Content-Type": "application/json"},
    )


def list_agents(status: str | None) -> Call[list[Agent]]:
    params = {"status": status} if status is not None else None
    return Call("GET", f"{AGENTS}/", model_list(Agent), params=params)


def get_agent(agent_id: str) -> Call[Agent]:
    return Call("GET", _agent(agent_id), model(Agent))


def create_agent(fields: Mapping[str, Any]) -> Call[Agent]:
    return Call("POST", f"{AGENTS}/", model(Agent), json=_body(fields))


def update_agent(agent_id: str, changes: Mapping[str, Any]) -> Call[Agent]:
    return Call("PATCH", _agent(agent_id), model(Agent), json=_body(changes))


def delete_agent(agent_id: str) -> Call[None]:
    return Call("DELETE", _agent(agent_id), no_content)


def post_message(task_id: str, fields: Mapping[str, Any]) -> Call[MessagePosted]:
    return Call("POST", f"{_task(task_id)}/messages", model(MessagePosted), json=_body(fields))


def list_messages(task_id: str) -> Call[list[Message]]:
    return Call("GET", f"{_task(task_id)}/messages", model_list(Message))


# --- sections and subtasks


def _position(position: int | None) -> dict[str, int] | None:
    return {"position": position} if position is not None else None


def add_section(task_id: str, fields: Mapping[str, Any], position: int | None) -> Call[Section]:
    return Call(
        "POST",
        f"{_task(task_id)}/sections",
        model(Section),
        params=_position(position),
        json=_body(fields),
    )


def rename_section(task_id: str, section_id: str, title: str) -> Call[Section]:
    path = f"{_task(task_id)}/sections/{path_id(section_id)}"
    return Call("PATCH", path, model(Section), json={"title": title})


def delete_section(task_id: str, section_id: str) -> Call[None]:
    return Call("DELETE", f"{_task(task_id)}/sections/{path_id(section_id)}", no_content)


def add_subtask(
    task_id: str, section_id: str, fields: Mapping[str, Any], position: int | None
) -> Call[Subtask]:
    return Call(
        "POST",
        f"{_task(task_id)}/sections/{path_id(section_id)}/subtasks",
        model(Subtask),
        params=_position(position),
        json=_body(fields),
    )


def update_subtask(task_id: str, subtask_id: str, changes: Mapping[str, Any]) -> Call[Subtask]:
    path = f"{_task(task_id)}/subtasks/{path_id(subtask_id)}"
    return Call("PATCH", path, model(Subtask), json=_body(changes))


def toggle_subtask(task_id: str, subtask_id: str) -> Call[Subtask]:
    return Call("POST", f"{_task(task_id)}/subtasks/{path_id(subtask_id)}/toggle", model(Subtask))


def delete_subtask(task_id: str, subtask_id: str) -> Call[None]:
    return Call("DELETE", f"{_task(task_id)}/subtasks/{path_id(subtask_id)}", no_content)


# --- events, state and control


def publish(task_id: str, events: list[Any]) -> Call[list[int]]:
    return Call("POST", f"{_task(task_id)}/events", seqs, json={"events": jsonable(events)})


def events(task_id: str, *, since: int, limit: int, types: Iterable[str] | None) -> Call[EventPage]:
    params: dict[str, Any] = {"since": since, "limit": limit}
    if types is not None:
        wanted = [types] if isinstance(types, str) else [str(t) for t in types]
        params["types"] = ",".join(wanted)
    return Call("GET", f"{_task(task_id)}/events", model(EventPage), params=params)


def state(task_id: str) -> Call[TaskState]:
    return Call("GET", f"{_task(task_id)}/state", model(TaskState))


def control(task_id: str, command: str) -> Call[TaskControl]:
    """``pause``, ``resume`` or ``cancel``; anything else raises ``ValueError`` (no request)."""
    if command not in CONTROL_COMMANDS:
        raise ValueError(f"unknown command {command!r}; use one of: pause, resume, cancel")
    return Call("POST", f"{_task(task_id)}/{command}", model(TaskControl))


def next_task(agent_id: str) -> Call[Task | None]:
    return Call("GET", f"{_agent(agent_id)}/next-task", optional_model(Task))


# --- claiming


def claim(
    *,
    agent_id: str | None,
    tags: Iterable[str],
    assigned: str,
    lease_seconds: float | None,
) -> Call[ClaimedTask | None]:
    body: dict[str, Any] = {"tags": [str(tag) for tag in tags], "assigned": assigned}
    if agent_id is not None:
        body["agent_id"] = agent_id
    if lease_seconds is not None:
        body["lease_seconds"] = lease_seconds
    return Call("POST", f"{TASKS}/claim", optional_model(ClaimedTask), json=body)


def renew_lease(task_id: str, lease_seconds: float | None) -> Call[ClaimedTask]:
    body = {"lease_seconds": lease_seconds} if lease_seconds is not None else {}
    return Call("POST", f"{_task(task_id)}/lease", model(ClaimedTask), json=body)


def release(task_id: str) -> Call[Task]:
    return Call("POST", f"{_task(task_id)}/release", model(Task))


# --- requests (questions and approvals for people)

REQUESTS = "/api/v1/requests"
#: How much longer than the server's long poll a client waits for its answer.
_POLL_MARGIN = 10.0


def open_request(task_id: str, body: Mapping[str, Any]) -> Call[Request]:
    return Call("POST", f"{_task(task_id)}/requests", model(Request), json=jsonable(body))


def get_request(request_id: str, wait: float = 0) -> Call[Request]:
    path = f"{REQUESTS}/{path_id(request_id)}"
    if wait <= 0:
        return Call("GET", path, model(Request))
    return Call(
        "GET", path, model(Request), params={"wait": wait}, read_timeout=wait + _POLL_MARGIN
    )


def list_requests(status: Iterable[str], task_id: str | None) -> Call[list[Request]]:
    params: dict[str, Any] = {"status": list(status)}
    if task_id is not None:
        params["task_id"] = task_id
    return Call("GET", REQUESTS, model_list(Request, key="requests"), params=params)


def answer_request(request_id: str, body: Mapping[str, Any]) -> Call[Request]:
    path = f"{REQUESTS}/{path_id(request_id)}/answer"
    return Call("POST", path, model(Request), json=jsonable(body))


def cancel_request(request_id: str, reason: str | None) -> Call[Request]:
    body = {"reason": reason} if reason is not None else {}
    return Call("POST", f"{REQUESTS}/{path_id(request_id)}/cancel", model(Request), json=body)


# --- webhooks (admins): plain JSON documents


def _webhook(webhook_id: str) -> str:
    return f"{WEBHOOKS}/{path_id(webhook_id)}"


def list_webhooks() -> Call[dict[str, Any]]:
    return Call("GET", f"{WEBHOOKS}/", json_object)


def create_webhook(fields: Mapping[str, Any]) -> Call[dict[str, Any]]:
    return Call("POST", f"{WEBHOOKS}/", json_object, json=_body(fields))


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call("DELETE", _webhook(webhook_id), no_content)


def test_webhook(webhook_id: str) -> Call[dict[str, Any]]:
    return Call("POST", f"{_webhook(webhook_id)}/test", json_object)


def webhook_deliveries(webhook_id: str, *, status: str | None, limit: int) -> Call[dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    return Call("GET", f"{_webhook(webhook_id)}/deliveries", json_object, params=params)
