"""Every door checks: each route of the application, tried anonymously and with each role.

The table below is the documented rule of each route (README, "Security"). The test walks
the application's route table, so a route added without a rule here fails it.
"""

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed

from tests.support.auth import SecureServer, secure_server
from tests.support.ws import open_ws

ROLES = ("admin", "member", "agent", "viewer")
EVERYONE = frozenset(ROLES)
PEOPLE = frozenset({"admin", "member"})  # a person's work
WORKERS = frozenset({"admin", "member", "agent"})  # and the agent's, on its own task
ADMIN = frozenset({"admin"})
OPEN = "open"  # answers without credentials

AGENT_ID = "agent_bot"


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str] | str
    body: Any = None


#: (method, path) -> who may. Reads are everyone's; changes a person's; the agent's on its
#: own tasks; the connection status and import with mode=replace the admin's.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/"): Rule(OPEN),
    ("GET", "/health"): Rule(OPEN),
    ("GET", "/openapi.json"): Rule(OPEN),
    ("GET", "/docs"): Rule(OPEN),
    ("GET", "/docs/oauth2-redirect"): Rule(OPEN),
    ("GET", "/redoc"): Rule(OPEN),
    ("GET", "/ui/"): Rule(OPEN),
    ("GET", "/ui"): Rule(OPEN),  # the UI's files (the mount)
    ("GET", "/api/v1/auth/me"): Rule(EVERYONE),
    ("POST", "/api/v1/auth/session"): Rule(OPEN, {"username": "ana", "password": "x" * 9}),
    ("DELETE", "/api/v1/auth/session"): Rule(OPEN),
    ("POST", "/api/v1/auth/token"): Rule(OPEN, {"username": "ana", "password": "x" * 9}),
    ("GET", "/auth/link"): Rule(OPEN),
    ("GET", "/api/v1/tasks/export/{format}"): Rule(EVERYONE),
    ("GET", "/api/v1/tasks/{task_id}/export/{format}"): Rule(EVERYONE),
    ("POST", "/api/v1/tasks/import"): Rule(PEOPLE, "export"),
    ("POST", "/api/v1/tasks/{task_id}/events"): Rule(
        WORKERS, {"event_type": "progress_update", "data": {"progress": 0.5}}
    ),
    ("GET", "/api/v1/tasks/{task_id}/events"): Rule(EVERYONE),
    ("GET", "/api/v1/events"): Rule(EVERYONE),
    ("GET", "/api/v1/tasks/{task_id}/state"): Rule(EVERYONE),
    ("GET", "/api/v1/tasks/{task_id}/runs"): Rule(EVERYONE),
    ("GET", "/api/v1/tasks/"): Rule(EVERYONE),
    ("POST", "/api/v1/tasks/"): Rule(PEOPLE, {"title": "new"}),
    ("GET", "/api/v1/tasks/{task_id}"): Rule(EVERYONE),
    ("PUT", "/api/v1/tasks/{task_id}"): Rule(PEOPLE, {"title": "replaced"}),
    ("PATCH", "/api/v1/tasks/{task_id}"): Rule(PEOPLE, {"priority": "high"}),
    ("DELETE", "/api/v1/tasks/{task_id}"): Rule(PEOPLE),
    ("POST", "/api/v1/tasks/{task_id}/sections"): Rule(WORKERS, {"title": "plan"}),
    ("PATCH", "/api/v1/tasks/{task_id}/sections/{section_id}"): Rule(WORKERS, {"title": "p2"}),
    ("DELETE", "/api/v1/tasks/{task_id}/sections/{section_id}"): Rule(WORKERS),
    ("PUT", "/api/v1/tasks/{task_id}/sections/order"): Rule(WORKERS, "section_order"),
    ("POST", "/api/v1/tasks/{task_id}/sections/{section_id}/subtasks"): Rule(
        WORKERS, {"title": "step"}
    ),
    ("PUT", "/api/v1/tasks/{task_id}/sections/{section_id}/subtasks/order"): Rule(
        WORKERS, "subtask_order"
    ),
    ("PATCH", "/api/v1/tasks/{task_id}/subtasks/{subtask_id}"): Rule(WORKERS, {"done": True}),
    ("POST", "/api/v1/tasks/{task_id}/subtasks/{subtask_id}/toggle"): Rule(WORKERS),
    ("DELETE", "/api/v1/tasks/{task_id}/subtasks/{subtask_id}"): Rule(WORKERS),
    ("GET", "/api/v1/tasks/{task_id}/messages"): Rule(EVERYONE),
    ("POST", "/api/v1/tasks/{task_id}/messages"): Rule(WORKERS, {"content": "hello"}),
    ("GET", "/api/v1/agents/"): Rule(EVERYONE),
    ("POST", "/api/v1/agents/"): Rule(WORKERS, {"id": AGENT_ID, "name": "Bot"}),
    ("GET", "/api/v1/agents/{agent_id}"): Rule(EVERYONE),
    ("PATCH", "/api/v1/agents/{agent_id}"): Rule(WORKERS, {"name": "Bot 2"}),
    ("DELETE", "/api/v1/agents/{agent_id}"): Rule(WORKERS),
    ("GET", "/api/v1/tasks/{task_id}/stream"): Rule(EVERYONE),
    ("GET", "/api/v1/websocket/status"): Rule(ADMIN),
    ("POST", "/api/v1/clients/{client_id}/messages"): Rule(PEOPLE, {"hello": 1}),
    ("POST", "/api/v1/tasks/{task_id}/pause"): Rule(PEOPLE),
    ("POST", "/api/v1/tasks/{task_id}/resume"): Rule(PEOPLE),
    ("POST", "/api/v1/tasks/{task_id}/cancel"): Rule(PEOPLE),
    ("GET", "/api/v1/agents/{agent_id}/next-task"): Rule(EVERYONE),
    ("POST", "/api/v1/tasks/claim"): Rule(WORKERS, {"agent_id": AGENT_ID}),
    ("POST", "/api/v1/tasks/{task_id}/lease"): Rule(WORKERS),
    ("POST", "/api/v1/tasks/{task_id}/release"): Rule(WORKERS),
    # requests: agents (on their own tasks) and people ask, everyone reads, people answer;
    # the asking agent (or one working on the task) and people cancel
    ("POST", "/api/v1/tasks/{task_id}/requests"): Rule(
        WORKERS, {"kind": "question", "question": "Which branch?"}
    ),
    ("GET", "/api/v1/tasks/{task_id}/requests"): Rule(EVERYONE),
    ("GET", "/api/v1/requests"): Rule(EVERYONE),
    ("GET", "/api/v1/requests/{request_id}"): Rule(EVERYONE),
    ("POST", "/api/v1/requests/{request_id}/answer"): Rule(PEOPLE, {"answer": "main"}),
    ("POST", "/api/v1/requests/{request_id}/cancel"): Rule(WORKERS),
    ("WS", "/ws/tasks/{task_id}"): Rule(EVERYONE),
    ("WS", "/ws/board"): Rule(EVERYONE),
    ("WS", "/ws/agents/{agent_id}"): Rule(frozenset({"admin", "agent"})),
    ("GET", "/api/v1/tasks/{task_id}/agui"): Rule(EVERYONE),
    ("POST", "/api/v1/agui"): Rule(PEOPLE, "agui"),
    # MCP: the roles that may work on tasks; each tool then checks its own action
    ("GET", "/mcp"): Rule(WORKERS),
    ("POST", "/mcp"): Rule(WORKERS, {"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    ("DELETE", "/mcp"): Rule(WORKERS),
    # outgoing webhooks: the admin's
    ("GET", "/api/v1/webhooks/"): Rule(ADMIN),
    ("POST", "/api/v1/webhooks/"): Rule(ADMIN, {"url": "http://127.0.0.1:9/hook"}),
    ("GET", "/api/v1/webhooks/{webhook_id}"): Rule(ADMIN),
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): Rule(ADMIN, {"description": "x"}),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): Rule(ADMIN),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): Rule(ADMIN),
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): Rule(ADMIN),
}

_STREAMS = {"/api/v1/tasks/{task_id}/stream", "/api/v1/tasks/{task_id}/agui", "/api/v1/agui"}


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, WebSockets as ``WS`` (HEAD is GET's)."""

    def walk(entries: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in entries:
            if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.120)
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
                continue
            # as documented: "{task_id:id}" (a path convertor) is "{task_id}"
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)
            methods = getattr(route, "methods", None)
            if type(route).__name__ == "APIWebSocketRoute":
                yield "WS", path
            elif methods is None:
                yield "GET", path  # a mount: its files are read with GET
            else:
                yield from ((m, path) for m in sorted(methods) if m != "HEAD")

    return walk(app.routes, "")


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def test_every_route_has_a_rule(secured: SecureServer) -> None:
    assert secured.server.app is not None
    found = set(routes(secured.server.app))
    assert found - RULES.keys() == set(), "routes without a rule in RULES"
    assert RULES.keys() - found == set(), "rules of routes that no longer exist"


def _fixture(admin: httpx.Client) -> dict[str, str]:
    """A task assigned to the agent (with a section and a subtask) for one call."""
    if admin.get(f"/api/v1/agents/{AGENT_ID}").status_code == 404:
        assert admin.post("/api/v1/agents/", json={"id": AGENT_ID, "name": "Bot"}).is_success
    task = admin.post(
        "/api/v1/tasks/",
        json={
            "title": "walked",
            "assigned_agent_id": AGENT_ID,
            "sections": [{"title": "plan", "subtasks": [{"title": "one"}]}],
        },
    ).json()
    section = task["sections"][0]
    request = admin.post(
        f"/api/v1/tasks/{task['id']}/requests", json={"kind": "question", "question": "?"}
    ).json()
    webhook = admin.post(  # disabled: it takes no events, only a test delivery
        "/api/v1/webhooks/", json={"url": "http://127.0.0.1:9/hook", "enabled": False}
    ).json()
    return {
        "webhook_id": webhook["id"],
        "request_id": request["id"],
        "task_id": task["id"],
        "section_id": section["id"],
        "subtask_id": section["subtasks"][0]["id"],
        "agent_id": AGENT_ID,
        "client_id": "client_walk1",
        "format": "json",
    }


def _body(rule: Rule, ids: dict[str, str], admin: httpx.Client) -> Any:
    if rule.body == "export":
        document = json.loads(admin.get(f"/api/v1/tasks/{ids['task_id']}/export/json").content)
        for task in document["tasks"]:
            task["id"] = f"task_{uuid.uuid4().hex[:10]}"
        return document
    if rule.body == "section_order":
        return {"ids": [ids["section_id"]]}
    if rule.body == "subtask_order":
        return {"ids": [ids["subtask_id"]]}
    if rule.body == "agui":
        return {
            "threadId": str(uuid.uuid4()),
            "runId": str(uuid.uuid4()),
            "state": {},
            "messages": [{"id": "u1", "role": "user", "content": "hello"}],
            "tools": [],
            "context": [],
            "forwardedProps": {},
        }
    return rule.body


def _call(http: httpx.Client, method: str, template: str, path: str, body: Any) -> int:
    if template in _STREAMS:
        with http.stream(method, path, json=body) as response:
            return response.status_code
    if path == "/auth/link":
        return http.get(path, params={"token": "tl_not-a-link"}).status_code
    if path == "/ui":
        path = "/ui/css/app.css"
    return http.request(method, path, json=body).status_code


async def _ws_outcome(url: str, headers: dict[str, str] | None) -> int | str:
    """``open`` when the first frame came, else the close code."""
    try:
        async with open_ws(url, additional_headers=headers or {}) as websocket:
            await asyncio.wait_for(websocket.recv(), 10)
            return "open"
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


@pytest.mark.parametrize("who", [None, *ROLES])
def test_each_route_answers_each_role_as_documented(secured: SecureServer, who: str | None) -> None:
    """Anonymous: 401 (WebSockets 4401) except the open routes; a role the rule leaves out:
    403 (4403); a role it allows: anything but 401/403 (the call reaches the route)."""
    assert secured.server.app is not None
    wrong: list[str] = []
    with secured.client("admin") as admin, secured.client(who) as http:
        for method, template in sorted(routes(secured.server.app)):
            rule = RULES[method, template]
            ids = _fixture(admin)
            path = template.format(**ids)
            if method == "WS":
                headers = secured.headers(who) if who else None
                got: int | str = asyncio.run(_ws_outcome(secured.ws_url + path, headers))
                expected: set[int | str] = (
                    {4401} if who is None else ({"open"} if who in rule.allowed else {4403})
                )
            else:
                got = _call(http, method, template, path, _body(rule, ids, admin))
                if rule.allowed == OPEN:
                    refused = {401, 403} - ({401} if template == "/auth/link" else set())
                    ok = got not in refused or template.startswith("/api/v1/auth/")
                    expected = {got} if ok else set()
                elif who is None:
                    expected = {401}
                elif who in rule.allowed:
                    expected = {got} if got not in {401, 403} else set()
                else:
                    expected = {403}
            if got not in expected:
                wrong.append(f"{method} {template} as {who or 'anonymous'}: {got}")
    assert wrong == []


def test_an_agent_acts_only_on_its_own_tasks(secured: SecureServer) -> None:
    """The agent token publishes, posts and edits the checklist on tasks assigned to its
    agent; on another agent's task (or nobody's) each is a 403 that says why."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        ids = _fixture(admin)
        admin.post("/api/v1/agents/", json={"id": "agent_other", "name": "Other"})
        theirs = admin.post(
            "/api/v1/tasks/", json={"title": "theirs", "assigned_agent_id": "agent_other"}
        ).json()["id"]
        nobodys = admin.post("/api/v1/tasks/", json={"title": "nobody's"}).json()["id"]
        event = {"event_type": "progress_update", "data": {"progress": 0.5}}
        assert agent.post(f"/api/v1/tasks/{ids['task_id']}/events", json=event).status_code == 200
        for task_id, holder in ((theirs, "agent_other"), (nobodys, "not assigned")):
            for path, body in (
                (f"/api/v1/tasks/{task_id}/events", event),
                (f"/api/v1/tasks/{task_id}/messages", {"content": "forged"}),
                (f"/api/v1/tasks/{task_id}/sections", {"title": "forged"}),
            ):
                refused = agent.post(path, json=body)
                assert refused.status_code == 403, path
                assert refused.headers["content-type"] == "application/problem+json"
                assert holder in refused.json()["detail"]
        # and it may change only its own agent record
        assert agent.patch("/api/v1/agents/agent_other", json={"name": "x"}).status_code == 403
        assert agent.patch(f"/api/v1/agents/{AGENT_ID}", json={"name": "me"}).status_code == 200


def test_import_with_replace_is_for_admins(secured: SecureServer) -> None:
    with secured.client("admin") as admin, secured.client("member") as member:
        ids = _fixture(admin)
        document = admin.get(f"/api/v1/tasks/{ids['task_id']}/export/json").content
        headers = {"Content-Type": "application/json"}
        replaced = member.post(
            "/api/v1/tasks/import", params={"mode": "replace"}, content=document, headers=headers
        )
        assert replaced.status_code == 403
        assert "admin" in replaced.json()["detail"]
        done = admin.post(
            "/api/v1/tasks/import", params={"mode": "replace"}, content=document, headers=headers
        )
        assert done.status_code == 200, done.text


def test_events_record_who_made_them(secured: SecureServer) -> None:
    """person:ana (her token), agent:agent_bot (its token), token:tok_… (a service token)."""
    with (
        secured.client("admin") as admin,
        secured.client("member") as member,
        secured.client("agent") as agent,
    ):
        ids = _fixture(admin)
        task_id = ids["task_id"]
        member.post(f"/api/v1/tasks/{task_id}/messages", json={"content": "from ana"})
        agent.post(
            f"/api/v1/tasks/{task_id}/events",
            json={"event_type": "progress_update", "data": {"progress": 0.25}},
        )
        log = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
        actors = [event["actor"] for event in log]
        assert actors[0].startswith("token:tok_")  # created by the admin's service token
        assert "person:ana" in actors and "agent:agent_bot" in actors
        # messages keep who posted them, and exports show it
        message = admin.get(f"/api/v1/tasks/{task_id}/messages").json()[-1]
        assert message["actor"] == "person:ana" and message["author"] == "ana"
        exported = admin.get(f"/api/v1/tasks/{task_id}/export/json").json()
        assert exported["tasks"][0]["messages"][-1]["actor"] == "person:ana"
        markdown = admin.get(f"/api/v1/tasks/{task_id}/export/md").text
        assert "person:ana" in markdown
