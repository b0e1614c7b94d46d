"""The REST API as :class:`~taskline.sdk._http.Call` builders, one function per endpoint.

Pure functions: they validate nothing the server validates (the server is the single judge
of input) and send nothing. Client faces wrap each one in a method that does the I/O.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from taskline.domain.models import Agent, Message, Task, TaskPage
from taskline.sdk._http import (
    Call,
    counts,
    download,
    json_object,
    jsonable,
    model,
    model_list,
    no_content,
    path_id,
)

__all__ = [
    "create_agent",
    "create_task",
    "delete_agent",
    "delete_task",
    "export",
    "get_agent",
    "get_task",
    "health",
    "import_tasks",
    "list_agents",
    "list_messages",
    "list_tasks",
    "post_message",
    "replace_task",
    "update_agent",
    "update_task",
]

TASKS = "/api/v1/tasks"
AGENTS = "/api/v1/agents"


def _task(task_id: str) -> str:
    return f"{TASKS}/{path_id(task_id)}"


def _agent(agent_id: str) -> str:
    return f"{AGENTS}/{path_id(agent_id)}"


def _body(fields: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = jsonable(dict(fields))
    return body


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", json_object)


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


def update_task(task_id: str, changes: Mapping[str, Any]) -> Call[Task]:
    return Call("PATCH", _task(task_id), model(Task), json=_body(changes))


def replace_task(task_id: str, fields: Mapping[str, Any]) -> Call[Task]:
    return Call("PUT", _task(task_id), model(Task), json=_body(fields))


def delete_task(task_id: str) -> Call[None]:
    return Call("DELETE", _task(task_id), no_content)


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


def post_message(task_id: str, fields: Mapping[str, Any]) -> Call[Message]:
    return Call("POST", f"{_task(task_id)}/messages", model(Message), json=_body(fields))


def list_messages(task_id: str) -> Call[list[Message]]:
    return Call("GET", f"{_task(task_id)}/messages", model_list(Message))
