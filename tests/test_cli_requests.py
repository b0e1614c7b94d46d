"""``taskline inbox``, ``answer``, ``approve`` and ``reject`` against a real server that
checks who asks: the table and --json, answers as text and as JSON, edited arguments, and the
exit codes of a refused answer, a request no longer open and a role that may not answer."""

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from taskline.cli.main import taskline
from taskline.sdk import Client
from tests.support.auth import SecureServer, secure_server


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def run(secured: SecureServer, role: str, *args: str, code: int = 0) -> Result:
    token = secured.tokens[role]
    result = CliRunner().invoke(taskline, ["--url", secured.url, "--token", token, *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_inbox_answer_approve_reject(secured: SecureServer) -> None:
    with Client(secured.url, token=secured.tokens["agent"]) as agent:
        with Client(secured.url, token=secured.tokens["admin"]) as admin:
            task = admin.create_task("Ship it")
        assert agent.claim() is not None
        question = agent.open_request(task.id, "question", "Which tag?", choices=["v1", "v2"])
        typed = agent.open_request(
            task.id, "question", "How many?", response_schema={"type": "integer"}
        )
        edit = agent.open_request(
            task.id, "approval", "Push?", action={"name": "push", "arguments": {"ref": "main"}}
        )
        refuse = agent.open_request(task.id, "approval", "Force?", action={"name": "force"})

    table = run(secured, "member", "inbox").stdout
    for request in (question, typed, edit, refuse):
        assert request.id in table
    assert "Which tag?  [v1 | v2]" in table and 'push {"ref": "main"}' in table
    listed = json.loads(run(secured, "viewer", "inbox", "--task", task.id, "--json").stdout)
    assert [r["id"] for r in listed["requests"]] == [question.id, typed.id, edit.id, refuse.id]

    assert "answered" in run(secured, "member", "answer", question.id, "v2").stdout
    refused = run(secured, "member", "answer", typed.id, "--json", '"three"', code=5)
    assert "integer" in refused.stderr
    done = run(secured, "member", "answer", typed.id, "--json", "3", "--print-json").stdout
    assert json.loads(done)["answer"] == 3
    run(secured, "member", "answer", typed.id, code=2)  # neither VALUE nor --json

    approved = run(
        secured, "member", "approve", edit.id, "--arguments", '{"ref": "dev"}', "--json"
    ).stdout
    assert (json.loads(approved)["status"], json.loads(approved)["arguments"]) == (
        "approved",
        {"ref": "dev"},
    )
    assert "not open" in run(secured, "member", "approve", edit.id, code=6).stderr
    assert "viewer" in run(secured, "viewer", "reject", refuse.id, code=7).stderr
    assert "agent" in run(secured, "agent", "reject", refuse.id, code=7).stderr
    rejected = run(secured, "admin", "reject", refuse.id, "--comment", "no forcing").stdout
    assert "rejected" in rejected
    assert "Nothing waits" in run(secured, "member", "inbox").stdout
    everything = json.loads(run(secured, "member", "inbox", "--all", "--json").stdout)
    assert [r["status"] for r in everything["requests"]] == [
        "answered",
        "answered",
        "approved",
        "rejected",
    ]
