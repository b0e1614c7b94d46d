"""A second, independent MCP client: the MCP Inspector's CLI (``@modelcontextprotocol/inspector``,
pinned by tests/mcp_js/package-lock.json) lists and calls Taskline's tools over Streamable
HTTP with the bearer header, and checks the tool schemas' portability (``--strict``).

Needs Node.js and npm (``npm ci`` installs the locked packages into tests/mcp_js/node_modules
on first use). Missing: skipped, or failed when TASKLINE_REQUIRE_SERVICES=1.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.auth import SecureServer, secure_server
from tests.support.node import locked_node

JS_DIR = Path(__file__).parent / "mcp_js"
PACKAGE = JS_DIR / "node_modules" / "@modelcontextprotocol" / "inspector"
LAUNCHER = PACKAGE / "clients" / "launcher" / "build" / "index.js"


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the locked Inspector installed."""
    return locked_node(JS_DIR, LAUNCHER)


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def inspect(
    node: str, server: SecureServer, tmp_path: Path, role: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the Inspector's CLI against the server's /mcp (its catalog in ``tmp_path``)."""
    headers = ["--header", f"Authorization: Bearer {server.tokens[role]}"] if role else []
    command = [node, str(LAUNCHER), "--cli", f"{server.url}/mcp", "--transport", "http"]
    return subprocess.run(
        [*command, *headers, *args],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(node).parent), "MCP_CATALOG_PATH": str(tmp_path / "mcp.json")},
    )


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def test_the_inspector_lists_the_tools_with_portable_schemas(
    node: str, secured: SecureServer, tmp_path: Path
) -> None:
    done = inspect(node, secured, tmp_path, "agent", "--method", "tools/list", "--strict")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    tools = answer(done)["tools"]
    assert len(tools) == 13 and {t["name"] for t in tools} >= {"get_task", "complete_task"}


def test_the_inspector_calls_tools(node: str, secured: SecureServer, tmp_path: Path) -> None:
    """A call works and lands in the task's log; a refusal is a tool error (isError)."""
    with secured.client("admin") as admin:
        task_id = admin.post("/api/v1/tasks/", json={"title": "inspected"}).json()["id"]
    args = ["--method", "tools/call", "--tool-name", "report_progress"]
    args += ["--tool-arg", f"task_id={task_id}", "progress=0.3", "message=from the inspector"]
    done = inspect(node, secured, tmp_path, "member", *args)
    assert done.returncode == 0, done.stderr
    result = answer(done)
    assert result["isError"] is False
    assert json.loads(result["content"][0]["text"])["progress"] == 0.3
    with secured.client("admin") as admin:
        assert admin.get(f"/api/v1/tasks/{task_id}").json()["progress"] == 0.3
        log = admin.get(f"/api/v1/tasks/{task_id}/events?types=tool_call.end").json()["events"]
    assert [e["data"]["name"] for e in log] == ["report_progress"]

    args = ["--method", "tools/call", "--tool-name", "get_task", "--tool-arg", "task_id=task_no"]
    refused = inspect(node, secured, tmp_path, "member", *args)
    assert refused.returncode != 0
    result = answer(refused)
    assert result["isError"] is True
    assert result["content"][0]["text"] == "404 not-found: task 'task_no' does not exist"


def test_the_inspector_without_a_token_is_refused(
    node: str, secured: SecureServer, tmp_path: Path
) -> None:
    """No token: the server's 401 (Bearer challenge) stops it before any tool is listed;
    a viewer's token: 403."""
    for role in (None, "viewer"):
        done = inspect(node, secured, tmp_path, role, "--method", "tools/list")
        assert done.returncode != 0
        assert '"tools"' not in done.stdout
