"""Every error is RFC 9457 problem details; no stack trace ever reaches a client."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.rest import new_task
from tests.support.server import LiveServer
from tests.support.ws import open_ws

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": 5}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x", "progress": 1.5}, "progress"),
        ({"title": "x", "confidence": -0.1}, "confidence"),
        ({"title": "x", "status": "done"}, "status"),
        ({"title": "x", "priority": "asap"}, "priority"),
        ({"title": "x", "tags": "not-a-list"}, "tags"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({}, "title"),
    ],
)
def test_bad_payloads_are_422_naming_the_field(
    client: httpx.Client, payload: dict[str, object], field: str
) -> None:
    """Wrong types, out-of-range values, empty and unknown fields each name the field."""
    body = assert_problem(client.post("/api/v1/tasks/", json=payload), 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["field"] == field
    assert field in str(body["detail"])


def test_invalid_json_is_422(client: httpx.Client) -> None:
    """A body that is not JSON is refused clearly."""
    response = client.post(
        "/api/v1/tasks/", content=b"{not json", headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert "JSON" in str(body["detail"])


def test_two_mebibyte_body_is_413(client: httpx.Client) -> None:
    """Bodies over the 1 MiB default limit are refused with 413 before being parsed."""
    big = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post(
        "/api/v1/tasks/", content=big, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 413)
    assert body["limit"] == 1024 * 1024


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    """A body without Content-Length is counted as it arrives."""

    def chunks() -> object:
        for _ in range(40):
            yield b"x" * 65536

    response = client.post(
        "/api/v1/tasks/import", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    """Routing errors are problem details too."""
    assert_problem(client.get("/api/v1/nothing"), 404)
    assert_problem(client.delete("/api/v1/tasks/"), 405)


def test_unsupported_export_format_lists_the_supported_ones(client: httpx.Client) -> None:
    """An unknown export format is a 400 naming json, csv, md and zip."""
    body = assert_problem(client.get("/api/v1/tasks/export/xlsx"), 400)
    for name in ("json", "csv", "md", "zip"):
        assert name in str(body["detail"])
    task = client.post("/api/v1/tasks/", json={"title": "t"}).json()
    assert_problem(client.get(f"/api/v1/tasks/{task['id']}/export/pdf"), 400)


async def test_a_nul_character_is_stored_or_refused_never_a_storage_error(
    server: LiveServer, client: httpx.Client
) -> None:
    """A NUL (\\u0000) in a JSON body or frame is refused on both backends (a REST publish:
    422; an agent's publish frame: an error frame); in a URL, SQLite looks it up and
    PostgreSQL, which cannot store one, refuses it (1008) for a stream of such a task id or
    an agent connecting with one in its name. It used to be a 503 (and a 1011 on sockets), which
    invites sending the same thing again, forever (found by the WebSocket fuzz test)."""
    stores = client.get("/health").json()["database"] == "sqlite"
    task_id = new_task(client)
    event = {"event_type": "custom", "data": {"name": "nul", "value": "a\u0000b"}}
    # in a JSON body or frame a NUL is refused at the edge on both backends (json_bounds)
    response = client.post(f"/api/v1/tasks/{task_id}/events", json=event)
    assert "U+0000" in str(assert_problem(response, 422)["detail"])
    async with open_ws(f"{server.ws_url}/ws/agents/agent_nul") as agent:
        assert json.loads(await agent.recv())["type"] == "welcome"
        frame = {"type": "publish", "batch_id": 1, "task_id": task_id, "events": [event]}
        await agent.send(json.dumps(frame))
        answer = json.loads(await agent.recv())
        # the frame itself is refused as it is read (an error frame naming the NUL), the
        # connection stays open
        assert answer["type"] == "error" and "U+0000" in json.dumps(answer), answer
    async with open_ws(f"{server.ws_url}/ws/tasks/task_%00x") as ws:
        with pytest.raises(ConnectionClosed):
            while True:  # connection_established, then the close
                await ws.recv()
    assert ws.close_code == (4404 if stores else 1008)  # no such task / no such id
    async with open_ws(f"{server.ws_url}/ws/agents/agent_nul2?name=a%00b") as ws:
        if stores:
            assert json.loads(await ws.recv())["type"] == "welcome"
        else:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
