"""The spec's ConnectionManager test list (8 behaviours) and its integration test, by name,
against a real server with real WebSocket clients."""

import json

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.rest import new_task
from tests.support.server import LiveServer
from tests.support.waiting import async_wait_until
from tests.support.ws import collect_events, open_ws, receive, receive_until


def status(client: httpx.Client) -> dict[str, object]:
    body: dict[str, object] = client.get("/api/v1/websocket/status").json()
    return body


async def test_new_client_connection_with_auto_generated_id(
    server: LiveServer, client: httpx.Client
) -> None:
    """A client that names no id gets a fresh client_… id."""
    task_id = new_task(client)
    url = f"{server.ws_url}/ws/tasks/{task_id}"
    async with open_ws(url) as first, open_ws(url) as second:
        ids = {(await receive(ws))["data"]["client_id"] for ws in (first, second)}
    assert len(ids) == 2 and all(i.startswith("client_") for i in ids)


async def test_custom_client_id_connection(server: LiveServer, client: httpx.Client) -> None:
    """A client may name its id; a second connection with it replaces the first."""
    task_id = new_task(client)
    url = f"{server.ws_url}/ws/tasks/{task_id}?client_id=client_mine"
    async with open_ws(url) as ws:
        assert (await receive(ws))["data"]["client_id"] == "client_mine"
        async with open_ws(url) as again:
            assert (await receive(again))["data"]["client_id"] == "client_mine"
            assert [c["client_id"] for c in status(client)["clients"]] == ["client_mine"]  # type: ignore[index]


async def test_client_disconnection_and_cleanup(server: LiveServer, client: httpx.Client) -> None:
    """A client that leaves is removed from its task and from the totals."""
    task_id = new_task(client)
    async with open_ws(f"{server.ws_url}/ws/tasks/{task_id}") as ws:
        await receive(ws)
        assert status(client)["connections_total"] == 1
    await async_wait_until(
        lambda: status(client)["connections_total"] == 0,
        message="the server to forget the connection",
    )
    body = status(client)
    assert body["connections_total"] == 0 and body["connections_per_task"] == {}


async def test_personal_message_sending(server: LiveServer, client: httpx.Client) -> None:
    """A personal message reaches only the client it is addressed to."""
    task_id = new_task(client)
    url = f"{server.ws_url}/ws/tasks/{task_id}"
    async with open_ws(f"{url}?client_id=client_target") as target, open_ws(url) as other:
        await receive(target)
        await receive(other)
        sent = client.post("/api/v1/clients/client_target/messages", json={"text": "hi"})
        assert sent.json()["delivered"] is True
        message = await receive(target)
        assert message["event_type"] == "personal_message"
        assert message["data"] == {"text": "hi"} and message["client_id"] == "client_target"
        await other.send(json.dumps({"type": "ping"}))
        assert (await receive(other))["event_type"] == "pong"  # nothing personal came first


async def test_task_broadcasting_to_multiple_clients(
    server: LiveServer, client: httpx.Client
) -> None:
    """An event on a task reaches all its subscribers and none of another task's."""
    task_a, task_b = new_task(client), new_task(client)
    url = server.ws_url + "/ws/tasks/"
    async with open_ws(url + task_a) as a1, open_ws(url + task_a) as a2, open_ws(url + task_b) as b:
        for ws in (a1, a2, b):
            await receive(ws)
        client.post(
            f"/api/v1/tasks/{task_a}/events",
            json={"event_type": "step.start", "data": {"name": "x"}},
        )
        for ws in (a1, a2):
            assert (await collect_events(ws, 2))[-1]["event_type"] == "step.start"
        await b.send(json.dumps({"type": "ping"}))
        assert (await receive(b))["event_type"] == "pong"


async def test_message_queuing_for_offline_clients(
    server: LiveServer, client: httpx.Client
) -> None:
    """Messages to an offline client wait for it and arrive in order when it returns."""
    task_id = new_task(client)
    for n in range(3):
        queued = client.post("/api/v1/clients/client_away/messages", json={"n": n}).json()
        assert queued == {"client_id": "client_away", "delivered": False, "queued": n + 1}
    async with open_ws(f"{server.ws_url}/ws/tasks/{task_id}?client_id=client_away") as ws:
        frames = [await receive(ws) for _ in range(4)]
    assert frames[0]["event_type"] == "connection_established"
    assert [f["data"]["n"] for f in frames[1:]] == [0, 1, 2]


async def test_task_connection_retrieval(server: LiveServer, client: httpx.Client) -> None:
    """The status endpoint lists each task's connections."""
    task_a, task_b = new_task(client), new_task(client)
    url = server.ws_url + "/ws/tasks/"
    async with open_ws(url + task_a) as a1, open_ws(url + task_a) as a2, open_ws(url + task_b) as b:
        for ws in (a1, a2, b):
            await receive(ws)
        assert status(client)["connections_per_task"] == {task_a: 2, task_b: 1}


async def test_connection_info_tracking(server: LiveServer, client: httpx.Client) -> None:
    """Each client's info: ids, times, user agent, address, messages sent, outbox depth."""
    task_id = new_task(client)
    url = f"{server.ws_url}/ws/tasks/{task_id}?client_id=client_info"
    async with open_ws(url, user_agent_header="spec-test/1.0") as ws:
        await receive_until(ws, "connection_established")
        client.post(
            f"/api/v1/tasks/{task_id}/events", json={"event_type": "custom", "data": {"name": "n"}}
        )
        await collect_events(ws, 2)
        (info,) = status(client)["clients"]  # type: ignore[misc]
    assert info["client_id"] == "client_info" and info["task_id"] == task_id
    assert info["user_agent"] == "spec-test/1.0"
    assert info["remote_address"].startswith("127.0.0.1:")
    assert info["messages_sent"] == 2 and info["outbox_depth"] == 0
    assert info["connected_at"] <= info["last_seen"]


async def test_websocket_endpoint_registration_and_status_endpoint(
    server: LiveServer, client: httpx.Client
) -> None:
    """Integration: both WebSocket routes answer a handshake and the status endpoint answers;
    an unregistered WebSocket path is refused."""
    task_id = new_task(client)
    for path in (f"/ws/tasks/{task_id}", "/ws/board"):
        async with open_ws(server.ws_url + path) as ws:
            assert (await receive(ws))["event_type"] == "connection_established"
    with pytest.raises(InvalidStatus):
        async with open_ws(server.ws_url + "/ws/nothing"):
            pass
    body = status(client)
    expected = {"connections_total", "connections_per_task", "clients", "bus", "uptime_seconds"}
    assert expected <= set(body)
    assert body["bus"]["history_capacity"] == 1000  # type: ignore[index]
