"""``taskline tasks claim`` and ``taskline tasks release`` against a real server that checks
who asks: output, ``--json``, and the exit codes of nothing to claim, bad input and a lease
the caller does not hold."""

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from taskline.cli.main import taskline
from tests.support.auth import SecureServer, make_token, secure_server


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def run(secured: SecureServer, token: str, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(taskline, ["--url", secured.url, "--token", token, *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_claim_and_release(secured: SecureServer) -> None:
    admin, agent = secured.tokens["admin"], secured.tokens["agent"]
    created = run(secured, admin, "tasks", "create", "Write docs", "--tag", "docs", "--json")
    task_id = json.loads(created.stdout)["id"]
    assert "nothing to claim" in run(secured, agent, "tasks", "claim", "--tag", "rust").stderr
    assert run(secured, agent, "tasks", "claim", "--tag", "rust", "--json").stdout == "null\n"
    claimed = run(secured, agent, "tasks", "claim", "--tag", "docs", "--lease", "60")
    assert task_id in claimed.stdout and "held by agent_bot until" in claimed.stdout
    assert run(secured, agent, "tasks", "claim", "--lease", "0.5", code=5).stderr.startswith(
        "error: lease_seconds"
    )
    other = make_token(secured.database_url, "agent", agent_id="agent_other", name="other")
    refused = run(secured, other, "tasks", "release", task_id, code=6)
    assert "held by agent_bot" in refused.stderr
    released = run(secured, agent, "tasks", "release", task_id, "--json")
    assert json.loads(released.stdout)["status"] == "pending"
    again = run(secured, admin, "tasks", "claim", "--agent", "agent_bot")  # for an agent
    assert "claimed" in again.stdout and "(lease 2)" in again.stdout
    person = run(secured, secured.tokens["member"], "tasks", "claim", code=5)
    assert "agent_id" in person.stderr
    viewer = run(secured, secured.tokens["viewer"], "tasks", "claim", code=7)
    assert "viewer" in viewer.stderr
