"""An agent's status PATCHed through the registry reaches board viewers live, on every process."""

import httpx

from tests.support.server import LiveServer
from tests.support.ws import open_ws, receive_until


async def test_a_patched_status_reaches_a_board_viewer(
    server: LiveServer, client: httpx.Client
) -> None:
    """PATCH /api/v1/agents/{id} status: the board gets agent_status_change (no seq, no task)."""
    agent = client.post("/api/v1/agents/", json={"name": "Scout"}).json()
    url = f"/api/v1/agents/{agent['id']}"
    async with open_ws(f"{server.ws_url}/ws/board") as ws:
        await receive_until(ws, "connection_established")
        assert client.patch(url, json={"name": "Scout 2"}).status_code == 200
        patched = client.patch(url, json={"status": "working"})
        assert patched.status_code == 200
        seen = await receive_until(ws, "agent_status_change")
    change = seen[-1]
    assert change["data"] == {
        "agent_id": agent["id"],
        "status": "working",
        "previous": agent["status"],
    }
    assert change["seq"] is None
    assert change["task_id"] is None
    assert change["agent_id"] == agent["id"]
    # a name change alone announced nothing before it
    assert [m["event_type"] for m in seen].count("agent_status_change") == 1
