"""Storable JSON values through real servers, on every way in and out.

- The largest values the bounds accept (64 levels, the signed 64-bit extremes, a 512 Ki
  string, a 100,000-member array) are stored everywhere a client stores JSON, and every read
  endpoint gives them back, unchanged, without a 500.
- Values beyond the bounds (2**64, -2**63-1, 65, 252 and 1000 levels) are a 422 naming the
  field on every way in, the agent socket's publish included (a nack).
- Values an older version stored that no encoder writes are served with markers in their place
  (``taskline_unreadable``), and the list holding them is still served.
"""

import asyncio
import importlib
import json
import pkgutil
import zipfile
from io import BytesIO
from typing import Any

import httpx
import orjson
from fastapi import APIRouter
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import taskline.api
from taskline.api.json_body import JsonBodyRoute
from taskline.domain.json_bounds import (
    MAX_DEPTH,
    MAX_INT,
    MAX_ITEMS,
    MAX_STRING_LENGTH,
    MIN_INT,
    UNREADABLE_KEY,
)
from tests.support.server import LiveServer
from tests.support.ws import collect_events, open_ws


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def nested_objects(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def largest(*, small: bool = False) -> dict[str, Any]:
    """An object at every bound at once (``small``: fits in one 64 KiB socket frame)."""
    return {
        "deep": nested(MAX_DEPTH - 1),  # 64 levels with the object around it
        "objects": nested_objects(MAX_DEPTH - 1),
        "max": MAX_INT,
        "min": MIN_INT,
        "float": -1.5e308,
        "text": 'é ü 😀 \t\n"\\',
        "many": [0] * (1000 if small else MAX_ITEMS),
        "long": "x" * (1000 if small else MAX_STRING_LENGTH),
    }


LARGEST = largest()
SMALL = largest(small=True)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text[:500]
    return response.json() if response.headers.get("content-type", "").endswith("json") else None


def publish(client: httpx.Client, task_id: str, *events: dict[str, Any], **params: str) -> None:
    ok(client.post(f"/api/v1/tasks/{task_id}/events", json=list(events), params=params))


def sse_events(server: LiveServer, task_id: str, last_seq: int) -> list[dict[str, Any]]:
    """The task's events from the SSE stream, replayed from the start up to ``last_seq``."""
    events: list[dict[str, Any]] = []
    buffer = ""
    with (
        httpx.Client(base_url=server.url, timeout=30) as http,
        http.stream("GET", f"/api/v1/tasks/{task_id}/stream", params={"since": 0}) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer:
                record, buffer = buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in record.split("\n") if ": " in line)
                if "id" in fields:
                    events.append(json.loads(fields["data"]))
                    if int(fields["id"]) >= last_seq:
                        return events
    raise AssertionError(f"the stream ended after {len(events)} events")


def ws_events(server: LiveServer, task_id: str, last_seq: int) -> list[dict[str, Any]]:
    async def replay() -> list[dict[str, Any]]:
        url = f"{server.ws_url}/ws/tasks/{task_id}?since=0"
        async with open_ws(url, max_size=None) as websocket:
            return await collect_events(websocket, last_seq, timeout=30)

    return asyncio.run(replay())


def agui_frames(server: LiveServer, task_id: str) -> list[dict[str, Any]]:
    """The task's first run as AG-UI events (``Last-Event-ID: 0``, to its end)."""
    frames = []
    with (
        httpx.Client(base_url=server.url, timeout=30) as http,
        http.stream(
            "GET",
            f"/api/v1/tasks/{task_id}/agui",
            params={"until": "run_end"},
            headers={"Last-Event-ID": "0"},
        ) as response,
    ):
        assert response.status_code == 200
        body = response.read().decode()
    for record in body.split("\n\n"):
        data = [line[6:] for line in record.split("\n") if line.startswith("data: ")]
        if data:
            frames.append(json.loads(data[0]))
    return frames


def read_everything(server: LiveServer, client: httpx.Client, task_id: str) -> dict[str, Any]:
    """Every read endpoint for ``task_id`` (and the board): each answers, none 500s."""
    seen: dict[str, Any] = {
        "list": ok(client.get("/api/v1/tasks/", params={"limit": 200})),
        "task": ok(client.get(f"/api/v1/tasks/{task_id}")),
        "log": ok(client.get(f"/api/v1/tasks/{task_id}/events", params={"limit": 10_000})),
        "recent": ok(client.get("/api/v1/events", params={"limit": 1000})),
        "recent of the task": ok(client.get("/api/v1/events", params={"task_id": task_id})),
        "state": ok(client.get(f"/api/v1/tasks/{task_id}/state")),
        "agents": ok(client.get("/api/v1/agents/")),
    }
    for format in ("json", "csv", "md", "zip"):
        for path in (f"/api/v1/tasks/export/{format}", f"/api/v1/tasks/{task_id}/export/{format}"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            seen[path] = response.content
    last_seq = seen["log"]["last_seq"]
    seen["sse"] = sse_events(server, task_id, last_seq)
    seen["ws"] = ws_events(server, task_id, last_seq)
    seen["agui"] = agui_frames(server, task_id)
    return seen


def test_the_largest_values_are_stored_everywhere_and_read_back_everywhere(
    server: LiveServer, client: httpx.Client
) -> None:
    agent = ok(
        client.post(
            "/api/v1/agents/", json={"id": "agent_big", "name": "Big", "metadata": LARGEST}
        ),
        201,
    )
    assert agent["metadata"] == LARGEST
    ok(client.patch("/api/v1/agents/agent_big", json={"metadata": LARGEST}))
    task = ok(
        client.post(
            "/api/v1/tasks/",
            json={"title": "Largest", "result": LARGEST, "assigned_agent_id": "agent_big"},
        ),
        201,
    )
    task_id = task["id"]
    assert task["result"] == LARGEST
    put = {"title": "Largest", "result": LARGEST, "assigned_agent_id": "agent_big"}
    assert ok(client.put(f"/api/v1/tasks/{task_id}", json=put))["result"] == LARGEST
    assert ok(client.patch(f"/api/v1/tasks/{task_id}", json={"result": LARGEST}))["result"] == (
        LARGEST
    )
    publish(client, task_id, {"event_type": "custom", "data": {"name": "big", "value": LARGEST}})
    publish(client, task_id, {"event_type": "state.snapshot", "data": {"snapshot": LARGEST}})
    patch = [{"op": "replace", "path": "", "value": LARGEST}]
    publish(client, task_id, {"event_type": "state.patch", "data": {"patch": patch}})
    more = [{"op": "add", "path": "/more", "value": nested(MAX_DEPTH - 1)}]
    publish(client, task_id, {"event_type": "state.patch", "data": {"patch": more}})
    assert ok(client.get(f"/api/v1/tasks/{task_id}/state"))["state"] == {
        **LARGEST,
        "more": nested(MAX_DEPTH - 1),
    }

    async def agent_publishes() -> dict[str, Any]:
        async with open_ws(f"{server.ws_url}/ws/agents/agent_big") as websocket:
            await websocket.recv()  # welcome
            frame = {
                "type": "publish",
                "batch_id": "b1",
                "task_id": task_id,
                "events": [{"event_type": "custom", "data": {"name": "small", "value": SMALL}}],
            }
            await websocket.send(json.dumps(frame))
            answer: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), 10))
            return answer

    assert asyncio.run(agent_publishes())["type"] == "ack"

    # an AG-UI run: started, a snapshot, a delta, finished with the largest result
    agui = {"format": "agui"}
    run = {"threadId": task_id, "runId": "run_big"}
    publish(client, task_id, {"type": "RUN_STARTED", **run}, **agui)
    publish(client, task_id, {"type": "STATE_SNAPSHOT", "snapshot": LARGEST}, **agui)
    delta = [{"op": "add", "path": "/small", "value": nested(MAX_DEPTH - 1)}]
    publish(client, task_id, {"type": "STATE_DELTA", "delta": delta}, **agui)
    publish(client, task_id, {"type": "RUN_FINISHED", **run, "result": LARGEST}, **agui)

    # the task's export, read back whole
    exported = orjson.loads(ok_bytes(client.get(f"/api/v1/tasks/{task_id}/export/json")))
    assert exported["tasks"][0]["result"] == LARGEST
    # imported again as another task and agent (the agent's metadata smaller: one body)
    copy = {**exported["tasks"][0], "id": "task_imported", "assigned_agent_id": "agent_imported"}
    agent_copy = {**exported["agents"][0], "id": "agent_imported", "metadata": SMALL}
    imported = {**exported, "tasks": [copy], "agents": [agent_copy]}
    body = orjson.dumps(imported)
    headers = {"content-type": "application/json"}
    assert ok(client.post("/api/v1/tasks/import", content=body, headers=headers))["tasks"] == 1
    assert ok(client.get("/api/v1/tasks/task_imported"))["result"] == LARGEST
    assert ok(client.get("/api/v1/agents/agent_imported"))["metadata"] == SMALL

    seen = read_everything(server, client, task_id)
    expected_state = {**LARGEST, "small": nested(MAX_DEPTH - 1)}
    assert seen["task"]["result"] == LARGEST
    assert [t["result"] for t in seen["list"]["items"] if t["id"] == task_id] == [LARGEST]
    assert seen["state"]["state"] == expected_state
    assert {a["id"]: a["metadata"] for a in seen["agents"]} == {
        "agent_big": LARGEST,
        "agent_imported": SMALL,
    }
    log = seen["log"]["events"]
    values = {e["data"]["name"]: e["data"]["value"] for e in log if e["event_type"] == "custom"}
    assert values == {"big": LARGEST, "small": SMALL}
    for name in ("sse", "ws"):
        assert [e["seq"] for e in seen[name]] == [e["seq"] for e in log], name
        assert [e["data"] for e in seen[name]] == [e["data"] for e in log], name
    recent = {e["id"]: e for e in seen["recent"]}
    assert all(recent[e["id"]] == e for e in log[-len(seen["recent"]) :] if e["id"] in recent)
    frames = {frame["type"]: frame for frame in seen["agui"]}
    assert frames["RUN_FINISHED"]["result"] == LARGEST
    assert frames["STATE_SNAPSHOT"]["snapshot"] == LARGEST
    archive = zipfile.ZipFile(BytesIO(seen[f"/api/v1/tasks/{task_id}/export/zip"]))
    assert archive.testzip() is None
    board = orjson.loads(seen["/api/v1/tasks/export/json"])
    assert {t["id"]: t["result"] for t in board["tasks"]} == {
        task_id: LARGEST,
        "task_imported": LARGEST,
    }


def ok_bytes(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text[:300]
    return response.content


# --- beyond the bounds: a 422 naming the field on every way in --------------------------------

BEYOND = {
    "2**64": "18446744073709551616",
    "-2**63-1": "-9223372036854775809",
    "65 levels": "[" * 65 + "1" + "]" * 65,
    "252 levels": "[" * 252 + "1" + "]" * 252,
    "1000 levels": "[" * 1000 + "1" + "]" * 1000,
}

#: (method, path, body with @V@ where the value goes, the field the 422 names)
WAYS_IN: list[tuple[str, str, str, str]] = [
    ("POST", "/api/v1/tasks/", '{"title": "t", "result": @V@}', "result"),
    ("PUT", "/api/v1/tasks/{task}", '{"title": "t", "result": @V@}', "result"),
    ("PATCH", "/api/v1/tasks/{task}", '{"result": @V@}', "result"),
    ("POST", "/api/v1/agents/", '{"name": "a", "metadata": {"m": @V@}}', "metadata"),
    ("PATCH", "/api/v1/agents/{agent}", '{"metadata": {"m": @V@}}', "metadata"),
    (
        "POST",
        "/api/v1/tasks/{task}/events",
        '{"event_type": "custom", "data": {"name": "x", "value": @V@}}',
        "events.0.data.value",
    ),
    (
        "POST",
        "/api/v1/tasks/{task}/events",
        '{"events": [{"event_type": "task_completed", "data": {"result": @V@}}]}',
        "events.0.data.result",
    ),
    (
        "POST",
        "/api/v1/tasks/{task}/events",
        '[{"event_type": "state.snapshot", "data": {"snapshot": @V@}}]',
        "events.0.data.snapshot",
    ),
    (
        "POST",
        "/api/v1/tasks/{task}/events",
        '{"event_type": "state.patch", "data": {"patch": [{"op": "add", "path": "/a", '
        '"value": @V@}]}}',
        "events.0.data.patch.0.value",
    ),
    (
        "POST",
        "/api/v1/tasks/{task}/events?format=agui",
        '{"type": "STATE_SNAPSHOT", "snapshot": @V@}',
        "events.0.snapshot",
    ),
    (
        "POST",
        "/api/v1/tasks/{task}/events?format=agui",
        '{"type": "RUN_FINISHED", "threadId": "t", "runId": "r", "result": @V@}',
        "events.0.result",
    ),
    (
        "POST",
        "/api/v1/tasks/{task}/events?format=agui",
        '{"type": "STATE_DELTA", "delta": [{"op": "add", "path": "/a", "value": @V@}]}',
        "events.0.delta.0.value",
    ),
    ("POST", "/api/v1/clients/client_away/messages", '{"v": @V@}', "body"),
    ("POST", "/api/v1/tasks/import", "@EXPORT@", "tasks.0.result"),
]


def problem_field(body: dict[str, Any]) -> str:
    field: str = body["errors"][0]["field"]
    return field


def test_values_beyond_the_bounds_are_refused_naming_the_field_on_every_way_in(
    sqlite_server: LiveServer,
) -> None:
    with httpx.Client(base_url=sqlite_server.url, timeout=30) as client:
        ok(client.post("/api/v1/agents/", json={"id": "agent_bound", "name": "Bound"}), 201)
        task = ok(client.post("/api/v1/tasks/", json={"title": "t", "result": "@V@"}), 201)
        export = ok_bytes(client.get(f"/api/v1/tasks/{task['id']}/export/json")).decode()
        task_id = task["id"]
        for label, value in BEYOND.items():
            for method, path, template, field in WAYS_IN:
                body = export.replace('"@V@"', value) if template == "@EXPORT@" else template
                response = client.request(
                    method,
                    path.format(task=task_id, agent="agent_bound"),
                    content=body.replace("@V@", value).encode(),
                    headers={"content-type": "application/json"},
                )
                where = f"{label} on {method} {path}"
                assert response.status_code == 422, f"{where}: {response.text[:300]}"
                problem = response.json()
                assert problem_field(problem) == field, f"{where}: {problem}"
                bound = "64-bit" if "**" in label else "deeper than 64 levels"
                assert bound in problem["detail"], f"{where}: {problem['detail']}"
        # nothing was stored on the way
        assert ok(client.get(f"/api/v1/tasks/{task_id}"))["result"] == "@V@"
        assert ok(client.get(f"/api/v1/tasks/{task_id}/events"))["last_seq"] == 1
        assert ok(client.get(f"/api/v1/tasks/{task_id}/state"))["version"] == 0


def test_the_agent_socket_nacks_values_beyond_the_bounds_naming_the_field(
    sqlite_server: LiveServer,
) -> None:
    with httpx.Client(base_url=sqlite_server.url, timeout=30) as client:
        ok(client.post("/api/v1/agents/", json={"id": "agent_sock", "name": "Sock"}), 201)
        task = {"title": "t", "assigned_agent_id": "agent_sock"}
        task_id = ok(client.post("/api/v1/tasks/", json=task), 201)["id"]

    async def publish_each() -> list[tuple[str, dict[str, Any]]]:
        answers = []
        async with open_ws(f"{sqlite_server.ws_url}/ws/agents/agent_sock") as websocket:
            await websocket.recv()  # welcome
            for label, value in BEYOND.items():
                for event, field in [
                    ('{"event_type": "custom", "data": {"name": "x", "value": @V@}}', "value"),
                    ('{"event_type": "state.snapshot", "data": {"snapshot": @V@}}', "snapshot"),
                ]:
                    frame = (
                        '{"type": "publish", "batch_id": "b", "task_id": "' + task_id + '", '
                        '"events": [' + event.replace("@V@", value) + "]}"
                    )
                    await websocket.send(frame)
                    answer = json.loads(await asyncio.wait_for(websocket.recv(), 10))
                    answers.append((f"{label} as {field}", {**answer, "expected": field}))
        return answers

    for where, answer in asyncio.run(publish_each()):
        assert answer["type"] == "nack" and answer["status"] == 422, (where, answer)
        assert problem_field(answer["error"]) == f"events.0.data.{answer['expected']}", where


# --- values stored by an older version ----------------------------------------------------------


def write_directly(database_url: str, statement: str, **values: Any) -> None:
    """Write rows as an older version could have (no checks), behind the server's back."""

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(statement), values)
        finally:
            await engine.dispose()

    asyncio.run(run())


def json_column(database_url: str) -> str:
    return "CAST(:v AS jsonb)" if database_url.startswith("postgresql") else ":v"


def test_values_an_older_version_stored_are_served_with_markers(
    server: LiveServer, client: httpx.Client, database_url: str
) -> None:
    """What an older version could store and no encoder writes — an integer beyond 64 bits,
    nesting of 253 levels (what pydantic took), deeper still in a state grown by patches,
    and on SQLite a lone surrogate — in a task's result, events' data, the shared state and an
    agent's metadata: every read still answers, with a marker where such a value was (on
    PostgreSQL the integer reads as the nearest float: jsonb cannot tell it from one)."""
    ok(client.post("/api/v1/agents/", json={"id": "agent_old", "name": "Old"}), 201)
    other = ok(client.post("/api/v1/tasks/", json={"title": "fine", "result": {"n": 1}}), 201)
    task_id = ok(client.post("/api/v1/tasks/", json={"title": "old", "result": 0}), 201)["id"]
    run = {"threadId": task_id, "runId": "run_old"}
    publish(client, task_id, {"type": "RUN_STARTED", **run}, format="agui")
    publish(client, task_id, {"event_type": "state.snapshot", "data": {"snapshot": {"a": 1}}})
    publish(client, task_id, {"event_type": "custom", "data": {"name": "old", "value": 0}})
    publish(client, task_id, {"event_type": "task_completed", "data": {"result": 0}})
    log = ok(client.get(f"/api/v1/tasks/{task_id}/events"))["events"]
    seq = {e["event_type"]: e["seq"] for e in log}

    sqlite = not database_url.startswith("postgresql")
    bad: dict[str, Any] = {"big": 2**64, "deep": nested(252)}
    if sqlite:
        bad["lone"] = "\ud800"
    column = json_column(database_url)

    def write(table: str, where: str, value: Any, **keys: Any) -> None:
        statement = f"UPDATE {table} SET {{}} = {column} WHERE {where}"
        write_directly(
            database_url, statement.format(*keys.pop("columns")), v=json.dumps(value), **keys
        )

    write("tasks", "id = :id", bad, id=task_id, columns=["result"])
    write("agents", "id = :id", bad, id="agent_old", columns=["metadata"])
    write("task_logs", "task_id = :id", {**bad, "deep": nested(400)}, id=task_id, columns=["state"])
    for kind, data in [
        ("state.snapshot", {"snapshot": bad}),
        ("custom", {"name": "old", "value": bad}),
        ("task_completed", {"result": bad}),
    ]:
        write(
            "events",
            "task_id = :id AND seq = :seq",
            data,
            id=task_id,
            seq=seq[kind],
            columns=["data"],
        )
    server.restart()  # nothing of the task left in memory: every read goes to the database

    seen = read_everything(server, client, task_id)
    marked = {
        "big": {UNREADABLE_KEY: "integer 18446744073709551616 is outside the signed 64-bit range"},
        "lone": {UNREADABLE_KEY: "a string holds a lone surrogate"},
    }

    def check(value: Any, where: str, levels: int = 252) -> None:
        assert value["big"] == (marked["big"] if sqlite else float(2**64)), where
        if sqlite:
            assert value["lone"] == marked["lone"], where
        node, depth = value["deep"], 0
        while isinstance(node, list):
            node, depth = node[0], depth + 1
        assert depth == levels or (isinstance(node, dict) and UNREADABLE_KEY in node), where

    check(seen["task"]["result"], "GET task")
    items = {t["id"]: t for t in seen["list"]["items"]}
    check(items[task_id]["result"], "the list")
    assert items[other["id"]]["result"] == {"n": 1}  # the rest of the list as it was
    check(seen["state"]["state"], "state", 400)
    check(next(a for a in seen["agents"] if a["id"] == "agent_old")["metadata"], "agents")
    for name in ("log", "sse", "ws"):
        events = seen[name]["events"] if name == "log" else seen[name]
        custom = next(e for e in events if e["event_type"] == "custom")
        check(custom["data"]["value"], name)
    board = orjson.loads(seen["/api/v1/tasks/export/json"])
    check(next(t for t in board["tasks"] if t["id"] == task_id)["result"], "export")
    frames = {frame["type"]: frame for frame in seen["agui"]}
    check(frames["RUN_FINISHED"]["result"], "AG-UI")
    # a patch cannot apply to a state holding such values; a snapshot replaces it
    add = {"op": "add", "path": "/b", "value": 1}
    refused = client.post(
        f"/api/v1/tasks/{task_id}/events",
        json={"event_type": "state.patch", "data": {"patch": [add]}},
    )
    assert refused.status_code == 422, refused.text
    assert "replace it whole" in refused.json()["detail"]
    publish(client, task_id, {"event_type": "state.snapshot", "data": {"snapshot": {"new": 1}}})
    assert ok(client.get(f"/api/v1/tasks/{task_id}/state"))["state"] == {"new": 1}


def test_every_route_with_a_body_reads_it_with_parse_json() -> None:
    """A new router that forgets ``route_class=JsonBodyRoute`` fails here."""
    with_body = [
        (name, route)
        for name, router in _api_routers()
        for route in router.routes
        if isinstance(route, APIRoute) and route.body_field is not None
    ]
    assert len(with_body) > 10
    assert [(n, r.path) for n, r in with_body if not isinstance(r, JsonBodyRoute)] == []


def _api_routers() -> list[tuple[str, APIRouter]]:
    found = []
    for module in pkgutil.iter_modules(taskline.api.__path__):
        router = getattr(importlib.import_module(f"taskline.api.{module.name}"), "router", None)
        if isinstance(router, APIRouter):
            found.append((module.name, router))
    return found
