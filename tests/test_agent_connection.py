"""The agent WebSocket: presence, acknowledged publishing, and commands from people."""

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from taskline.domain.errors import StorageError
from taskline.settings import Settings
from tests.support.server import LiveServer
from tests.support.waiting import async_wait_until
from tests.support.ws import open_ws


async def frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def wait_for_status(client: httpx.Client, agent_id: str, status: str) -> dict[str, Any]:
    def agent_if_status() -> dict[str, Any] | None:
        agent: dict[str, Any] = client.get(f"/api/v1/agents/{agent_id}").json()
        return agent if agent.get("status") == status else None

    found: dict[str, Any] = await async_wait_until(
        agent_if_status, message=f"agent {agent_id} to become {status}"
    )
    return found


async def test_connection_makes_the_agent_online_and_loss_offline(
    server: LiveServer, client: httpx.Client
) -> None:
    """An unknown agent is registered on connect (idle); it goes offline when it leaves,
    and the change is logged on its current task."""
    url = f"{server.ws_url}/ws/agents/agent_presence?name=Presence&kind=test"
    async with open_ws(url) as ws:
        welcome = await frame(ws)
        assert welcome["type"] == "welcome" and welcome["agent_id"] == "agent_presence"
        agent = client.get("/api/v1/agents/agent_presence").json()
        assert (agent["name"], agent["kind"], agent["status"]) == ("Presence", "test", "idle")
        task = client.post(
            "/api/v1/tasks/", json={"title": "t", "assigned_agent_id": "agent_presence"}
        ).json()
        client.patch("/api/v1/agents/agent_presence", json={"current_task_id": task["id"]})
    await wait_for_status(client, "agent_presence", "offline")
    events = client.get(
        f"/api/v1/tasks/{task['id']}/events", params={"types": "agent_status_change"}
    ).json()["events"]
    assert events[-1]["data"]["status"] == "offline"
    assert events[-1]["data"]["previous"] == "idle"


async def test_publish_is_acknowledged_with_seqs_and_refusals_are_nacked(
    server: LiveServer, client: httpx.Client
) -> None:
    """A publish frame is stored and acked with its seqs; a bad one gets a nack with the
    problem details; a re-sent batch stores nothing twice."""
    task_id = client.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
    async with open_ws(f"{server.ws_url}/ws/agents/agent_pub") as ws:
        await frame(ws)
        batch = {
            "type": "publish",
            "batch_id": "b1",
            "task_id": task_id,
            "events": [
                {"id": "evt_one", "event_type": "progress_update", "data": {"progress": 0.1}},
                {"id": "evt_two", "event_type": "step.start", "data": {"name": "read"}},
            ],
        }
        await ws.send(json.dumps(batch))
        ack = await frame(ws)
        assert ack == {
            "type": "ack",
            "batch_id": "b1",
            "task_id": task_id,
            "seqs": [2, 3],
            "last_seq": 3,
        }
        await ws.send(json.dumps(batch))
        assert (await frame(ws))["seqs"] == [2, 3]
        bad = {
            **batch,
            "batch_id": "b2",
            "events": [{"event_type": "progress_update", "data": {"progress": 2}}],
        }
        await ws.send(json.dumps(bad))
        nack = await frame(ws)
        assert nack["type"] == "nack" and nack["batch_id"] == "b2" and nack["status"] == 422
        assert nack["error"]["errors"][0]["field"] == "events.0.data.progress"
        await ws.send(json.dumps({**batch, "batch_id": "b3", "task_id": "task_none"}))
        assert (await frame(ws))["status"] == 404
        # what cannot be written back is not echoed: a batch id or task id beyond 64 bits
        # (the nack used to fail to encode, closing the socket with 1011)
        await ws.send(json.dumps({**batch, "batch_id": 2**64}))
        nack = await frame(ws)
        assert nack["batch_id"] is None and nack["status"] == 422
        assert nack["error"]["errors"][0]["field"] == "batch_id"
        await ws.send(json.dumps({**batch, "batch_id": "b4", "task_id": 2**64}))
        nack = await frame(ws)
        assert nack["batch_id"] == "b4" and nack["task_id"] is None and nack["status"] == 422
        await ws.send("{nope")
        assert (await frame(ws))["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "heartbeat"}))
        assert (await frame(ws))["type"] == "heartbeat"
    log = client.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    assert [e["id"] for e in log[1:]] == ["evt_one", "evt_two"]
    assert all(e["agent_id"] == "agent_pub" for e in log[1:])
    assert log[1]["source"] == "agent:agent_pub"


async def test_commands_reach_the_connected_agent_or_wait_for_it(
    server: LiveServer, client: httpx.Client
) -> None:
    """pause / resume / cancel and messages go to the task's agent; while it is away they are
    queued and delivered, in order, when it connects."""
    agent = client.post("/api/v1/agents/", json={"id": "agent_ctl", "name": "Ctl"}).json()
    task_id = client.post(
        "/api/v1/tasks/",
        json={"title": "t", "assigned_agent_id": agent["id"], "status": "in_progress"},
    ).json()["id"]
    async with open_ws(f"{server.ws_url}/ws/agents/agent_ctl") as ws:
        await frame(ws)
        paused = client.post(f"/api/v1/tasks/{task_id}/pause").json()
        assert paused["status"] == "paused" and paused["delivered"] is True
        command = await frame(ws)
        assert (command["type"], command["command"], command["task_id"]) == (
            "command",
            "pause",
            task_id,
        )
        client.post(f"/api/v1/tasks/{task_id}/resume")
        assert (await frame(ws))["command"] == "resume"
        posted = client.post(f"/api/v1/tasks/{task_id}/messages", json={"content": "Look at docs/"})
        assert posted.status_code == 201 and posted.json()["delivered"] is True
        message = await frame(ws)
        assert message["command"] == "message" and message["message"]["content"] == "Look at docs/"
    await wait_for_status(client, "agent_ctl", "offline")
    queued = client.post(f"/api/v1/tasks/{task_id}/messages", json={"content": "still there?"})
    assert queued.json()["delivered"] is False
    cancelled = client.post(f"/api/v1/tasks/{task_id}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["delivered"] is False
    assert client.post(f"/api/v1/tasks/{task_id}/pause").status_code == 409
    async with open_ws(f"{server.ws_url}/ws/agents/agent_ctl") as ws:
        assert (await frame(ws))["type"] == "welcome"
        first, second = await frame(ws), await frame(ws)
    assert (first["command"], first["message"]["content"]) == ("message", "still there?")
    assert second["command"] == "cancel"
    kinds = [
        e["event_type"] for e in client.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    ]
    assert {"task_paused", "task_resumed", "task_cancelled", "custom"} <= set(kinds)


def test_next_task_is_the_oldest_pending_assigned_one(client: httpx.Client) -> None:
    """next-task gives the oldest pending task assigned to the agent, 204 when none."""
    agent_id = client.post("/api/v1/agents/", json={"name": "Worker"}).json()["id"]
    assert client.get(f"/api/v1/agents/{agent_id}/next-task").status_code == 204
    first = client.post("/api/v1/tasks/", json={"title": "1", "assigned_agent_id": agent_id}).json()
    client.post("/api/v1/tasks/", json={"title": "2", "assigned_agent_id": agent_id})
    client.post("/api/v1/tasks/", json={"title": "other"})
    assert client.get(f"/api/v1/agents/{agent_id}/next-task").json()["id"] == first["id"]
    client.patch(f"/api/v1/tasks/{first['id']}", json={"status": "in_progress"})
    assert client.get(f"/api/v1/agents/{agent_id}/next-task").json()["title"] == "2"
    assert client.get("/api/v1/agents/agent_nobody/next-task").status_code == 404


async def test_bad_agent_id_is_refused(server: LiveServer) -> None:
    """An agent id that does not look like agent_… is closed with 1008."""
    async with open_ws(f"{server.ws_url}/ws/agents/Bad%20Id") as ws:
        with pytest.raises(ConnectionClosed):
            await frame(ws)
        assert ws.close_code == 1008


@pytest.mark.parametrize(
    ("query", "says"),
    [("kind=" + "k" * 65, "kind"), ("name=%20%20", "name"), ("name=" + "n" * 501, "name")],
)
async def test_a_name_or_kind_no_agent_could_have_is_refused_with_1008(
    sqlite_server: LiveServer, query: str, says: str
) -> None:
    """?kind= or ?name= that registering the agent would refuse (too long, blank) close the
    connection with 1008 naming the field, before the agent's connection in place is replaced
    (found by the fuzz test: it was a 1011 and a traceback in the log)."""
    url = f"{sqlite_server.ws_url}/ws/agents/agent_named"
    async with open_ws(url) as first:
        assert (await frame(first))["type"] == "welcome"
        async with open_ws(f"{url}?{query}") as refused:
            with pytest.raises(ConnectionClosed):
                await frame(refused)
            assert refused.close_code == 1008
            assert refused.close_reason.startswith(says)
        await first.send(json.dumps({"type": "ping", "timestamp": 1}))
        assert (await frame(first))["type"] == "pong"  # still the agent's connection


async def test_storage_down_while_an_agent_connects_closes_with_1011(
    sqlite_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database failing as the agent is registered closes its connection with 1011 (it
    reconnects later) and leaves no traceback in the server's log: the error used to reach an
    HTTP error handler, which failed on the WebSocket (found by the fuzz test, on PostgreSQL)."""
    assert sqlite_server.app is not None
    hub = sqlite_server.app.state.services.hub

    async def down(agent_id: str, **names: object) -> None:
        raise StorageError("database error: down")

    monkeypatch.setattr(hub.presence, "online", down)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("uvicorn").addHandler(handler)
    try:
        async with open_ws(f"{sqlite_server.ws_url}/ws/agents/agent_unlucky") as ws:
            with pytest.raises(ConnectionClosed):
                await frame(ws)
            assert ws.close_code == 1011
    finally:
        logging.getLogger("uvicorn").removeHandler(handler)
    assert not hub.is_connected("agent_unlucky")
    assert [r.getMessage() for r in records if r.exc_info] == []


async def test_heartbeat_and_ping_are_answered(server: LiveServer) -> None:
    """The agent socket answers a heartbeat with a heartbeat and a ping with a pong that
    carries the ping's timestamp back."""
    async with open_ws(f"{server.ws_url}/ws/agents/agent_pinger") as ws:
        assert (await frame(ws))["type"] == "welcome"
        await ws.send(json.dumps({"type": "ping", "timestamp": 42}))
        pong = await frame(ws)
        assert pong["type"] == "pong" and pong["client_timestamp"] == 42 and pong["server_time"]
        await ws.send(json.dumps({"type": "heartbeat"}))
        assert (await frame(ws))["type"] == "heartbeat"


async def test_the_frame_limit_counts_bytes_not_characters(tmp_path: Path) -> None:
    """An agent's frame is limited to max_body_bytes in bytes: 2,049 "é" (4,098 bytes) are
    over a 4,096 limit though they are fewer characters: closed with 1009 (found by the fuzz
    test; the limit used to be counted in characters)."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", max_body_bytes=4096
    )
    live = LiveServer(settings)
    live.start()
    try:
        async with open_ws(f"{live.ws_url}/ws/agents/agent_wide") as ws:
            assert (await frame(ws))["type"] == "welcome"
            await ws.send("é" * 2048)
            assert (await frame(ws))["code"] == "invalid_json"
            await ws.send("é" * 2049)
            with pytest.raises(ConnectionClosed):
                await frame(ws)
            assert ws.close_code == 1009
    finally:
        live.stop()
