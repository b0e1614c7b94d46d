"""The MCP server at /mcp, through the official SDK's client (Streamable HTTP, handshake and
2026-07-28 eras) against a real server on SQLite and PostgreSQL: the toolset and its cost,
each tool's effect as REST sees it, refusals as tool errors, who may connect, each call in
the task's log, and task resources with their update notifications."""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import mcp.types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from tests.support.auth import SecureServer, secure_server
from tests.support.mcp import mcp_session, tool_json
from tests.support.waiting import async_wait_until

AGENT = "agent_bot"
#: What the whole tools/list result may weigh (bytes of JSON; about a quarter as many tokens).
#: A client sends it to its model on every turn: raise it only for a tool worth the cost.
TOOLS_LIST_BUDGET = 5952  # 13 tools; claiming and releasing took it past 4,096, requests
# (ask_person asking and waiting, get_request, answer_request) by 1,328 more
TOOLS = {
    "find_tasks",
    "get_task",
    "report_progress",
    "check_item",
    "add_subtasks",
    "post_message",
    "ask_person",
    "get_request",
    "answer_request",
    "complete_task",
    "fail_task",
    "claim_next_task",
    "release_task",
}
#: the tools that take no task id (their calls are recorded on no task)
BOARD_TOOLS = {"find_tasks", "claim_next_task", "get_request", "answer_request"}


@pytest.fixture
def secured(database_url: str) -> Iterator[SecureServer]:
    with secure_server(database_url) as server:
        yield server


@pytest.fixture
def secured_sqlite(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def _task(server: SecureServer, **fields: Any) -> dict[str, Any]:
    """A task made by the admin (assigned to the agent, with a two-item checklist)."""
    with server.client("admin") as admin:
        if admin.get(f"/api/v1/agents/{AGENT}").status_code == 404:
            assert admin.post("/api/v1/agents/", json={"id": AGENT, "name": "Bot"}).is_success
        body = {
            "title": "Summarise the logs",
            "assigned_agent_id": AGENT,
            "tags": ["ops"],
            "sections": [{"title": "Plan", "subtasks": [{"title": "read"}, {"title": "write"}]}],
            **fields,
        }
        created = admin.post("/api/v1/tasks/", json=body)
        assert created.status_code == 201, created.text
        task: dict[str, Any] = created.json()
        return task


def _rest(server: SecureServer, path: str) -> Any:
    with server.client("admin") as admin:
        answer = admin.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def _error_text(result: types.CallToolResult) -> str:
    assert result.is_error, result.content
    (content,) = result.content
    assert isinstance(content, types.TextContent)
    return content.text


async def test_the_toolset_is_lean_and_strict(secured_sqlite: SecureServer) -> None:
    """At most 13 tools, each described in one short sentence, with a closed object schema
    whose required members are real properties; the whole list stays within its budget."""
    async with mcp_session(secured_sqlite.url, secured_sqlite.tokens["agent"]) as session:
        listed = await session.list_tools()
    assert {tool.name for tool in listed.tools} == TOOLS
    assert len(listed.tools) <= 13
    for tool in listed.tools:
        schema = tool.input_schema
        assert tool.description and len(tool.description) <= 100, tool.name
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema.get("required", ())) <= set(schema["properties"]), tool.name
        assert "$defs" not in schema and "title" not in schema, tool.name
        assert ("task_id" in schema["properties"]) == (tool.name not in BOARD_TOOLS)
        for name, member in schema["properties"].items():
            assert "anyOf" not in member and member.get("default", 0) is not None, (tool, name)
    progress = next(t for t in listed.tools if t.name == "report_progress").input_schema
    assert progress["properties"]["progress"] == {"maximum": 1, "minimum": 0, "type": "number"}
    size = len(listed.model_dump_json(by_alias=True, exclude_none=True).encode())
    print(f"tools/list: {size} bytes, about {size // 4} tokens")
    assert size <= TOOLS_LIST_BUDGET


async def test_each_tool_acts_through_the_service_and_rest_sees_it(secured: SecureServer) -> None:
    """An agent works a task through every tool; REST shows each effect."""
    task = _task(secured)
    task_id = task["id"]
    first = task["sections"][0]["subtasks"][0]["id"]
    async with mcp_session(secured.url, secured.tokens["agent"]) as session:
        found = tool_json(await session.call_tool("find_tasks", {"tag": "ops", "agent": AGENT}))
        assert [t["id"] for t in found["tasks"]] == [task_id] and found["total"] == 1
        assert tool_json(await session.call_tool("find_tasks", {"text": "nothing like it"})) == {
            "total": 0,
            "tasks": [],
        }
        read = tool_json(await session.call_tool("get_task", {"task_id": task_id}))
        assert [s["title"] for s in read["sections"][0]["subtasks"]] == ["read", "write"]
        assert read["events"][0]["type"] == "task_created"

        args = {"task_id": task_id, "progress": 0.25, "message": "Reading", "confidence": 0.6}
        progressed = tool_json(await session.call_tool("report_progress", args))
        assert progressed["status"] == "in_progress" and progressed["progress"] == 0.25
        ticked = tool_json(
            await session.call_tool(
                "check_item",
                {"task_id": task_id, "subtask_id": first, "if_version": progressed["version"]},
            )
        )
        assert ticked["done"] is True
        added = tool_json(
            await session.call_tool("add_subtasks", {"task_id": task_id, "titles": ["a", "b"]})
        )
        assert [s["title"] for s in added["subtasks"]] == ["a", "b"]
        tool_json(await session.call_tool("post_message", {"task_id": task_id, "content": "hi"}))
        asked = tool_json(
            await session.call_tool(
                "ask_person", {"task_id": task_id, "question": "Which log?", "wait_seconds": 0}
            )
        )
        assert asked["status"] == "open" and "get_request" in asked["note"]
        done = tool_json(
            await session.call_tool("complete_task", {"task_id": task_id, "result": {"errors": 3}})
        )
        assert done["status"] == "completed"

    after = _rest(secured, f"/api/v1/tasks/{task_id}")
    assert after["status"] == "completed" and after["result"] == {"errors": 3}
    assert after["progress"] == 1.0 and after["confidence"] == 0.6  # completing fills it
    subtasks = after["sections"][0]["subtasks"]
    assert [(s["title"], s["done"]) for s in subtasks] == [
        ("read", True),
        ("write", False),
        ("a", False),
        ("b", False),
    ]
    messages = _rest(secured, f"/api/v1/tasks/{task_id}/messages")
    assert [(m["content"], m["author_kind"], m["actor"]) for m in messages] == [
        ("hi", "agent", f"agent:{AGENT}"),
    ]
    request = _rest(secured, f"/api/v1/requests/{asked['request_id']}")
    assert (request["question"], request["created_by"]) == ("Which log?", f"agent:{AGENT}")
    assert request["status"] == "cancelled"  # completing the task cancelled it

    failing = _task(secured, title="doomed")["id"]
    async with mcp_session(secured.url, secured.tokens["member"]) as session:
        tool_json(await session.call_tool("report_progress", {"task_id": failing, "progress": 0}))
        failed = tool_json(
            await session.call_tool("fail_task", {"task_id": failing, "reason": "no logs"})
        )
    assert failed["status"] == "failed"
    log = _rest(secured, f"/api/v1/tasks/{failing}/events?types=task_failed")["events"]
    assert [(e["data"]["error"], e["actor"]) for e in log] == [("no logs", "person:ana")]


async def test_each_call_on_a_task_is_a_tool_call_in_its_log(secured: SecureServer) -> None:
    """Every call naming a task logs tool_call.start (arguments) then tool_call.end (result,
    duration), by the caller, around what the tool did; a refused call ends with its error."""
    task_id = _task(secured)["id"]
    async with mcp_session(secured.url, secured.tokens["agent"]) as session:
        tool_json(await session.call_tool("get_task", {"task_id": task_id, "events": 0}))
        args = {"task_id": task_id, "progress": 0.5, "message": "half"}
        tool_json(await session.call_tool("report_progress", args))
        _error_text(await session.call_tool("complete_task", {"task_id": task_id, "bad": 1}))
        _error_text(await session.call_tool("fail_task", {"task_id": task_id, "reason": "x" * 0}))
        await session.call_tool("find_tasks", {})
    events = _rest(secured, f"/api/v1/tasks/{task_id}/events")["events"]
    kinds = [(e["event_type"], e["data"].get("name")) for e in events]
    assert kinds == [
        ("task_created", None),
        ("tool_call.start", "get_task"),
        ("tool_call.end", "get_task"),
        ("tool_call.start", "report_progress"),
        ("task_started", None),
        ("progress_update", None),
        ("tool_call.end", "report_progress"),
    ]
    start, end = events[3], events[6]
    assert start["data"]["args"] == args and start["actor"] == f"agent:{AGENT}"
    assert start["source"] == "mcp" and start["agent_id"] == AGENT
    assert end["data"]["tool_call_id"] == start["data"]["tool_call_id"]
    assert end["data"]["result"]["status"] == "in_progress"
    assert end["data"]["duration_ms"] >= 0 and end["data"].get("error") is None

    pending = _task(secured, title="not started")["id"]
    async with mcp_session(secured.url, secured.tokens["agent"]) as session:
        _error_text(await session.call_tool("complete_task", {"task_id": pending}))
    ended = _rest(secured, f"/api/v1/tasks/{pending}/events?types=tool_call.end")["events"]
    assert ended[0]["data"]["error"].startswith("409 invalid-transition")


async def test_refusals_are_tool_errors_with_readable_text(secured: SecureServer) -> None:
    """Not found, forbidden, invalid arguments, an invalid transition (409), a stale version
    (412) and an unknown tool: each an isError result naming the problem, never a
    JSON-RPC error; the session goes on."""
    task = _task(secured)
    task_id = task["id"]
    subtask = task["sections"][0]["subtasks"][0]["id"]
    theirs = _task(secured, title="theirs", assigned_agent_id=None)["id"]
    async with mcp_session(secured.url, secured.tokens["agent"]) as session:
        text = _error_text(await session.call_tool("get_task", {"task_id": "task_missing"}))
        assert text == "404 not-found: task 'task_missing' does not exist"
        text = _error_text(
            await session.call_tool("post_message", {"task_id": theirs, "content": "forged"})
        )
        assert text.startswith("403 forbidden: ") and "only on its own tasks" in text
        text = _error_text(
            await session.call_tool("report_progress", {"task_id": task_id, "progress": 2})
        )
        assert text.startswith("invalid arguments: progress: ") and "less than or equal" in text
        text = _error_text(await session.call_tool("complete_task", {"task_id": task_id}))
        assert text.startswith("409 invalid-transition: ")
        assert text.endswith("allowed from 'pending': in_progress, cancelled")
        stale = {"task_id": task_id, "subtask_id": subtask, "if_version": 1}
        text = _error_text(await session.call_tool("check_item", stale))
        assert text.startswith("412 precondition-failed: ") and "it is at version" in text
        text = _error_text(await session.call_tool("no_such_tool", {}))
        assert text.startswith("unknown tool 'no_such_tool'")
        assert not tool_json(await session.call_tool("get_task", {"task_id": task_id}))["sections"][
            0
        ]["subtasks"][0]["done"]
    # the agent's forged message was refused by the service: nothing was stored
    assert _rest(secured, f"/api/v1/tasks/{theirs}/messages") == []
    # reading another's task is allowed, and not recorded on it (the agent may not publish)
    async with mcp_session(secured.url, secured.tokens["agent"]) as session:
        tool_json(await session.call_tool("get_task", {"task_id": theirs}))
    kinds = [e["event_type"] for e in _rest(secured, f"/api/v1/tasks/{theirs}/events")["events"]]
    assert kinds == ["task_created"]


async def test_claiming_and_releasing_through_mcp(secured: SecureServer) -> None:
    """claim_next_task gives the agent the most urgent pending task with a lease (or says none
    match); release_task gives it back, and then the task is no longer the agent's (progress
    on it is a readable tool error); a person's client must name the agent it claims for."""
    low = _task(secured, title="low", priority="low", assigned_agent_id=None)["id"]
    urgent = _task(secured, title="urgent", priority="urgent", assigned_agent_id=None)["id"]
    async with mcp_session(secured.url, secured.tokens["agent"]) as session:
        claimed = tool_json(
            await session.call_tool("claim_next_task", {"tags": ["ops"], "lease_seconds": 60})
        )
        assert claimed["task"]["id"] == urgent and claimed["lease"]["agent_id"] == AGENT
        token = claimed["lease"]["token"]
        second = tool_json(await session.call_tool("claim_next_task", {"tags": ["ops"]}))
        assert second["task"]["id"] == low
        nothing = tool_json(await session.call_tool("claim_next_task", {"tags": ["ops"]}))
        assert nothing["task"] is None
        released = tool_json(await session.call_tool("release_task", {"task_id": urgent}))
        assert released["status"] == "pending"
        late = {"task_id": urgent, "progress": 0.5}
        text = _error_text(await session.call_tool("report_progress", late))
        assert text.startswith("403 forbidden: ") and "not assigned" in text, text
    after = _rest(secured, f"/api/v1/tasks/{urgent}")
    assert after["status"] == "pending" and after["lease"] is None
    held = _rest(secured, f"/api/v1/tasks/{low}")
    assert held["status"] == "in_progress" and held["lease"]["agent_id"] == AGENT
    assert held["lease"]["token"] >= 1 and token >= 1
    async with mcp_session(secured.url, secured.tokens["member"]) as session:
        text = _error_text(await session.call_tool("claim_next_task", {}))
        assert text.startswith("422 ") and "agent_id" in text, text
        again = tool_json(await session.call_tool("claim_next_task", {"agent_id": AGENT}))
        assert again["task"]["id"] == urgent and again["lease"]["token"] == token + 1


async def test_who_may_connect(secured_sqlite: SecureServer) -> None:
    """Anonymous: 401 with WWW-Authenticate; a viewer: 403 naming the rule; a foreign
    Origin is refused by the doors; a session belongs to the token that opened it."""
    server = secured_sqlite
    hello = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=server.url, timeout=10, headers=accept) as http:
        anonymous = http.post("/mcp", json=hello)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="taskline"'
        viewer = http.post("/mcp", json=hello, headers=server.headers("viewer"))
        assert viewer.status_code == 403
        assert viewer.json()["detail"] == (
            "the viewer role may not use the MCP server (its tools change tasks)"
        )
        cookie_page = http.post(
            "/mcp", json=hello, headers={"Origin": "http://evil.example", "Cookie": "x=1"}
        )
        assert cookie_page.status_code == 401
        opened = http.post("/mcp", json=hello, headers=server.headers("member"))
        assert opened.status_code == 200
        session_id = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        other = http.post(
            "/mcp",
            json=listing,
            headers={**server.headers("agent"), "mcp-session-id": session_id},
        )
        assert other.status_code == 404
    for token in (None, server.tokens["viewer"]):  # the SDK's client: initialize fails
        refused = False
        try:
            async with mcp_session(server.url, token):
                pass
        except* MCPError:
            refused = True
        assert refused


async def test_a_task_resource_and_its_update_notifications(secured: SecureServer) -> None:
    """resources/list and the template name tasks; reading one gives its JSON; a subscribed
    session hears resources/updated when the task changes (by REST, not by MCP)."""
    task_id = _task(secured)["id"]
    uri = f"taskline://tasks/{task_id}"
    updated: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message, types.ResourceUpdatedNotification
        ):
            await updated.put(str(message.params.uri))

    async with mcp_session(
        secured.url, secured.tokens["member"], message_handler=on_message
    ) as session:
        listed = await session.list_resources()
        assert [(r.uri, r.title) for r in listed.resources] == [(uri, "Summarise the logs")]
        templates = await session.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == [
            "taskline://tasks/{task_id}"
        ]
        read = await session.read_resource(uri)
        (content,) = read.contents
        assert isinstance(content, types.TextResourceContents)
        assert content.mime_type == "application/json"
        assert json.loads(content.text)["title"] == "Summarise the logs"
        with pytest.raises(MCPError, match="does not exist"):
            await session.read_resource("taskline://tasks/task_missing")

        with pytest.warns(MCPDeprecationWarning):  # the handshake era's way, kept by clients
            await session.subscribe_resource(uri)
        await _until_streaming(secured, task_id, updated, uri)
        with pytest.warns(MCPDeprecationWarning):
            await session.unsubscribe_resource(uri)


async def _until_streaming(
    server: SecureServer, task_id: str, updated: "asyncio.Queue[str]", uri: str
) -> None:
    """Change the task by REST until a notification arrives (the session's GET stream opens
    a moment after initialize), then once more: each change is heard."""
    with server.client("admin") as admin:
        for attempt in range(50):
            admin.patch(f"/api/v1/tasks/{task_id}", json={"description": f"v{attempt}"})
            try:
                assert await asyncio.wait_for(updated.get(), 0.2) == uri
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("no resources/updated arrived")
        while not updated.empty():
            updated.get_nowait()
        admin.patch(f"/api/v1/tasks/{task_id}", json={"description": "last"})
        assert await asyncio.wait_for(updated.get(), 10) == uri


async def test_the_2026_protocol_calls_and_listens(secured_sqlite: SecureServer) -> None:
    """A 2026-07-28 client (no handshake, no session) lists and calls tools, and its
    subscriptions/listen stream hears the task change."""
    server = secured_sqlite
    task_id = _task(server)["id"]
    uri = f"taskline://tasks/{task_id}"
    http = httpx2.AsyncClient(headers=server.headers("agent"), timeout=30)
    async with http, Client(_Transport(f"{server.url}/mcp", http), mode="auto") as client:
        assert client.session.protocol_version == "2026-07-28"
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        result = tool_json(await client.call_tool("get_task", {"task_id": task_id, "events": 0}))
        assert result["id"] == task_id
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            with server.client("admin") as admin:
                admin.patch(f"/api/v1/tasks/{task_id}", json={"description": "changed"})
            event = await asyncio.wait_for(anext(aiter(subscription)), 10)
        assert getattr(event, "uri", None) == uri


class _Transport:
    """A Streamable HTTP transport with our HTTP client (the bearer header)."""

    def __init__(self, url: str, http: httpx2.AsyncClient) -> None:
        self._context = streamable_http_client(url, http_client=http)

    async def __aenter__(self) -> Any:
        return await self._context.__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._context.__aexit__(*exc)


async def test_ask_person_waits_for_the_answer_a_person_gives_over_mcp(
    secured: SecureServer,
) -> None:
    """ask_person opens a request and waits; a person's MCP client (a member's token) finds
    it in the inbox and answers it with answer_request, and the agent's call returns the
    answer. An approval answered with edited arguments returns those; get_request polls one
    left open; an agent may not answer."""
    task_id = _task(secured)["id"]
    async with (
        mcp_session(secured.url, secured.tokens["agent"]) as agent,
        mcp_session(secured.url, secured.tokens["member"]) as person,
    ):
        asking = asyncio.create_task(
            agent.call_tool(
                "ask_person",
                {
                    "task_id": task_id,
                    "question": "Which log?",
                    "choices": ["app", "db"],
                    "wait_seconds": 20,
                },
            )
        )
        async with httpx.AsyncClient(
            base_url=secured.url, headers=secured.headers("admin")
        ) as rest:

            async def waiting() -> list[dict[str, Any]]:
                listed = await rest.get("/api/v1/requests", params={"status": "open"})
                found: list[dict[str, Any]] = listed.json()["requests"]
                return found

            inbox = await async_wait_until(waiting, message="the question in the inbox")
        (request,) = inbox
        refused = await agent.call_tool(
            "answer_request", {"request_id": request["id"], "answer": "db"}
        )
        assert "answer requests" in _error_text(refused)
        answered = tool_json(
            await person.call_tool("answer_request", {"request_id": request["id"], "answer": "db"})
        )
        assert answered["status"] == "answered"
        got = tool_json(await asyncio.wait_for(asking, 20))
        assert (got["request_id"], got["status"], got["answer"]) == (
            request["id"],
            "answered",
            "db",
        )

        approval = {"name": "drop_table", "arguments": {"table": "logs"}, "risk": "high"}
        left = tool_json(
            await agent.call_tool(
                "ask_person",
                {"task_id": task_id, "question": "Drop?", "approval": approval, "wait_seconds": 0},
            )
        )
        assert left["status"] == "open"
        edited = {"request_id": left["request_id"], "decision": "approve"}
        edited["arguments"] = {"table": "old_logs"}
        assert tool_json(await person.call_tool("answer_request", edited))["status"] == "approved"
        polled = tool_json(await agent.call_tool("get_request", {"request_id": left["request_id"]}))
        assert (polled["status"], polled["arguments"]) == ("approved", {"table": "old_logs"})
        bad = await agent.call_tool(
            "ask_person",
            {"task_id": task_id, "question": "?", "choices": ["a"], "approval": approval},
        )
        assert "approval takes no" in _error_text(bad)
        counted = tool_json(
            await agent.call_tool(
                "ask_person",
                {
                    "task_id": task_id,
                    "question": "How many?",
                    "response_schema": {"type": "integer"},
                    "wait_seconds": 0,
                },
            )
        )
        typed = {"request_id": counted["request_id"], "answer": "three"}
        assert "not JSON" in _error_text(await person.call_tool("answer_request", typed))
        typed["answer"] = "3"  # JSON text, for a question with a response_schema
        assert tool_json(await person.call_tool("answer_request", typed))["answer"] == 3
    log = _rest(secured, f"/api/v1/tasks/{task_id}/events")["events"]
    opened = [e["actor"] for e in log if e["event_type"] == "request.opened"]
    assert opened == [f"agent:{AGENT}"] * 3
    assert [e["actor"] for e in log if e["event_type"] == "request.answered"] == [
        "person:ana",
        "person:ana",
        "person:ana",
    ]
