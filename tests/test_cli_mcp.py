"""``taskline mcp``: the stdio transport, relayed to the server's /mcp, driven by the official
SDK's ``stdio_client`` as a client that starts the process would; its errors on stderr."""

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.support.auth import SecureServer, secure_server
from tests.support.mcp import tool_json
from tests.support.server import free_port

COMMAND = [sys.executable, "-m", "taskline", "mcp"]


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def _params(url: str, token: str) -> StdioServerParameters:
    env = {**os.environ, "TASKLINE_URL": url, "TASKLINE_TOKEN": token}
    return StdioServerParameters(command=COMMAND[0], args=COMMAND[1:], env=env)


async def test_a_stdio_client_works_a_task_through_the_relay(secured: SecureServer) -> None:
    """Handshake era: initialize, list, call; REST shows the effect and the logged call."""
    with secured.client("admin") as admin:
        task_id = admin.post("/api/v1/tasks/", json={"title": "via stdio"}).json()["id"]
    async with (
        stdio_client(_params(secured.url, secured.tokens["member"])) as (read, write),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
        assert initialized.server_info.name == "taskline"
        assert len((await session.list_tools()).tools) == 13
        args = {"task_id": task_id, "progress": 0.4, "message": "over stdio"}
        assert tool_json(await session.call_tool("report_progress", args))["progress"] == 0.4
        missing = await session.call_tool("get_task", {"task_id": "task_missing"})
        assert missing.is_error
    with secured.client("admin") as admin:
        assert admin.get(f"/api/v1/tasks/{task_id}").json()["progress"] == 0.4
        events = admin.get(f"/api/v1/tasks/{task_id}/events?types=tool_call.start").json()
    assert [(e["data"]["name"], e["actor"]) for e in events["events"]] == [
        ("report_progress", "person:ana")
    ]


async def test_a_2026_client_over_stdio(secured: SecureServer) -> None:
    """The SDK's default client (it discovers the 2026-07-28 protocol) through the relay."""
    async with Client(_params(secured.url, secured.tokens["agent"])) as client:
        assert client.protocol_version == "2026-07-28"
        assert tool_json(await client.call_tool("find_tasks", {}))["total"] == 0


def _run(url: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TASKLINE_URL": url, "TASKLINE_TOKEN": token}
    return subprocess.run(COMMAND, env=env, input="", capture_output=True, text=True, timeout=60)


def test_errors_are_one_line_on_stderr(secured: SecureServer) -> None:
    """No server: exit 3; a refused token, a viewer: exit 7; stdout stays empty."""
    unreachable = _run(f"http://127.0.0.1:{free_port()}", "tl_x")
    assert unreachable.returncode == 3 and unreachable.stdout == ""
    assert unreachable.stderr.startswith("error: cannot reach the Taskline server at")
    refused = _run(secured.url, "tl_not-a-token")
    assert refused.returncode == 7
    assert refused.stderr.startswith("error: the token is refused")
    viewer = _run(secured.url, secured.tokens["viewer"])
    assert viewer.returncode == 7
    assert viewer.stderr.startswith("error: the viewer role may not use the MCP server")


def test_a_closed_stdin_ends_it(secured: SecureServer) -> None:
    """A client that goes away (stdin closed) ends the relay with exit 0."""
    done = _run(secured.url, secured.tokens["agent"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
