"""Requests (questions and approvals an agent asks a person), against a real server on SQLite
and PostgreSQL: open, list, read, answer, approve with edited arguments, reject, cancel,
expiry, the answer's schema and choices, who may, the long poll, a task ending, the log,
``needs_input`` and its filter, and a restart while a request is open."""

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.auth import SecureServer, secure_server
from tests.support.waiting import wait_until

CLAIM = "/api/v1/tasks/claim"


@pytest.fixture
def secured(database_url: str) -> Iterator[SecureServer]:
    with secure_server(database_url, request_sweep_interval=0.1) as server:
        yield server


def _claimed(admin: httpx.Client, agent: httpx.Client, title: str = "work") -> str:
    """A task the agent (agent_bot) holds: created by the admin, claimed by the agent."""
    created = admin.post("/api/v1/tasks/", json={"title": title})
    assert created.status_code == 201, created.text
    claimed = agent.post(CLAIM)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == created.json()["id"]
    return str(created.json()["id"])


def _ask(client: httpx.Client, task_id: str, **body: Any) -> dict[str, Any]:
    opened = client.post(f"/api/v1/tasks/{task_id}/requests", json=body)
    assert opened.status_code == 201, opened.text
    assert opened.headers["Location"] == f"/api/v1/requests/{opened.json()['id']}"
    request: dict[str, Any] = opened.json()
    return request


def _question(client: httpx.Client, task_id: str, **body: Any) -> dict[str, Any]:
    return _ask(client, task_id, kind="question", question="Which branch?", **body)


def _approval(client: httpx.Client, task_id: str, **action: Any) -> dict[str, Any]:
    action = {"name": "delete_branch", "arguments": {"branch": "old"}, **action}
    return _ask(client, task_id, kind="approval", question="Delete the branch?", action=action)


def _log(client: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    return events


def _needs_input(client: httpx.Client, task_id: str) -> bool:
    return bool(client.get(f"/api/v1/tasks/{task_id}").json()["needs_input"])


def test_a_question_is_opened_listed_and_answered(secured: SecureServer) -> None:
    """An agent asks; the request is open on the task, in the inbox and by id, the task needs
    input; a member answers; it is answered (by whom, when), the task no longer needs input,
    and the log holds request.opened then request.answered with their actors."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        asked = _question(agent, task_id, choices=["main", "dev"], run_id="run_1")
        assert asked["status"] == "open" and asked["id"].startswith("req_")
        assert (asked["task_id"], asked["created_by"]) == (task_id, "agent:agent_bot")
        assert asked["run_id"] == "run_1" and asked["resolved_at"] is None
        assert _needs_input(admin, task_id)
        listed = admin.get(f"/api/v1/tasks/{task_id}/requests").json()["requests"]
        assert [r["id"] for r in listed] == [asked["id"]]
        inbox = admin.get("/api/v1/requests", params={"status": "open"}).json()["requests"]
        assert [r["id"] for r in inbox] == [asked["id"]]
        assert admin.get(f"/api/v1/requests/{asked['id']}").json() == asked
        with secured.client("member") as member:
            answered = member.post(
                f"/api/v1/requests/{asked['id']}/answer", json={"answer": "dev", "comment": "ok"}
            )
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert (body["status"], body["answer"], body["comment"]) == ("answered", "dev", "ok")
        assert body["resolved_by"] == "person:ana" and body["resolved_at"]
        assert not _needs_input(admin, task_id)
        assert admin.get("/api/v1/requests", params={"status": "open"}).json()["requests"] == []
        answered_list = admin.get("/api/v1/requests", params={"status": "answered"}).json()
        assert [r["id"] for r in answered_list["requests"]] == [asked["id"]]
        log = _log(admin, task_id)
        logged = [(e["event_type"], e["actor"]) for e in log if e["event_type"].startswith("req")]
        assert logged == [
            ("request.opened", "agent:agent_bot"),
            ("request.answered", body["resolved_by"]),
        ]
        assert [e["data"]["status"] for e in log if e["event_type"].startswith("req")] == [
            "open",
            "answered",
        ]
        flips = [
            e["data"]["task"]["needs_input"]
            for e in log
            if e["event_type"] == "task_updated" and e["data"]["changes"] == ["needs_input"]
        ]
        assert flips == [True, False]


def test_approvals_are_approved_with_edited_arguments_or_rejected(secured: SecureServer) -> None:
    """Approving may edit the arguments (absent: as asked); rejecting keeps the comment; a
    request that is not open is a 409 and stays as it was."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        edited = _approval(agent, task_id, reason="cleanup", risk="high")
        assert edited["action"] == {
            "name": "delete_branch",
            "arguments": {"branch": "old"},
            "reason": "cleanup",
            "risk": "high",
        }
        approve = {"decision": "approve", "arguments": {"branch": "older"}}
        answer = admin.post(f"/api/v1/requests/{edited['id']}/answer", json=approve)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["arguments"]) == (
            "approved",
            {"branch": "older"},
        )
        as_asked = _approval(agent, task_id)
        answer = admin.post(
            f"/api/v1/requests/{as_asked['id']}/answer", json={"decision": "approve"}
        )
        assert (answer.json()["status"], answer.json()["arguments"]) == ("approved", None)
        refused = _approval(agent, task_id)
        answer = admin.post(
            f"/api/v1/requests/{refused['id']}/answer",
            json={"decision": "reject", "comment": "keep it"},
        )
        assert (answer.json()["status"], answer.json()["comment"]) == ("rejected", "keep it")
        again = admin.post(f"/api/v1/requests/{refused['id']}/answer", json={"decision": "approve"})
        assert again.status_code == 409, again.text
        assert again.headers["content-type"] == "application/problem+json"
        assert "rejected" in again.json()["detail"]
        assert admin.get(f"/api/v1/requests/{refused['id']}").json()["status"] == "rejected"
        no_decision = _approval(agent, task_id)
        bad = admin.post(f"/api/v1/requests/{no_decision['id']}/answer", json={"answer": 1})
        assert bad.status_code == 422, bad.text


def test_answers_must_fit_the_schema_and_the_choices(secured: SecureServer) -> None:
    """An answer that fails the response_schema or is not one of the choices is a 422 naming
    why, and the request stays open; a schema that is not a JSON Schema is refused when
    asked; an approval without an action, or a question with one, is refused."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
        typed = _question(agent, task_id, response_schema={**schema, "required": ["n"]})
        bad = admin.post(f"/api/v1/requests/{typed['id']}/answer", json={"answer": {"n": 0}})
        assert bad.status_code == 422, bad.text
        assert bad.json()["detail"].startswith("answer/n: 0 is less than the minimum of 1")
        missing = admin.post(f"/api/v1/requests/{typed['id']}/answer", json={"comment": "?"})
        assert missing.status_code == 422
        assert admin.get(f"/api/v1/requests/{typed['id']}").json()["status"] == "open"
        good = admin.post(f"/api/v1/requests/{typed['id']}/answer", json={"answer": {"n": 3}})
        assert (good.status_code, good.json()["answer"]) == (200, {"n": 3})
        chosen = _question(agent, task_id, choices=["yes", "no"])
        other = admin.post(f"/api/v1/requests/{chosen['id']}/answer", json={"answer": "maybe"})
        assert other.status_code == 422 and "not one of the choices" in other.json()["detail"]
        url = f"/api/v1/tasks/{task_id}/requests"
        for body in (
            {"kind": "question", "question": "?", "response_schema": {"type": "nope"}},
            {"kind": "approval", "question": "?"},
            {"kind": "question", "question": "?", "action": {"name": "x"}},
            {"kind": "question", "question": "?", "choices": ["a", "a"]},
            {"kind": "question", "question": "?", "expires_in": 0},
        ):
            refused = agent.post(url, json=body)
            assert refused.status_code == 422, (body, refused.text)


def test_who_may_ask_answer_and_cancel(secured: SecureServer) -> None:
    """Viewers read but neither ask nor answer (403); agents ask on their own tasks only and
    never answer (403); the asking agent may cancel; a viewer may not."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        other = admin.post("/api/v1/tasks/", json={"title": "not the agent's"}).json()["id"]
        asked = _question(agent, task_id)
        with secured.client("viewer") as viewer:
            assert viewer.get(f"/api/v1/requests/{asked['id']}").status_code == 200
            body = {"kind": "question", "question": "?"}
            assert viewer.post(f"/api/v1/tasks/{task_id}/requests", json=body).status_code == 403
            answer = viewer.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": 1})
            assert answer.status_code == 403, answer.text
            assert viewer.post(f"/api/v1/requests/{asked['id']}/cancel").status_code == 403
        mine = agent.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": 1})
        assert mine.status_code == 403 and "answer requests" in mine.json()["detail"]
        foreign = agent.post(
            f"/api/v1/tasks/{other}/requests", json={"kind": "question", "question": "?"}
        )
        assert foreign.status_code == 403, foreign.text
        assert agent.get("/api/v1/requests/req_nothing00").status_code == 404
        assert admin.post("/api/v1/tasks/task_nothing0/requests", json=body).status_code == 404
        cancelled = agent.post(f"/api/v1/requests/{asked['id']}/cancel", json={"reason": "moot"})
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["comment"]) == ("cancelled", "moot")
        assert cancelled.json()["resolved_by"] == "agent:agent_bot"
        assert agent.post(f"/api/v1/requests/{asked['id']}/cancel").status_code == 409
        assert not _needs_input(admin, task_id)


def test_a_long_poll_returns_when_another_client_answers(secured: SecureServer) -> None:
    """A wait blocks while the request is open and returns as soon as a person answers it
    from another client, with the answer; a wait on an answered request returns at once."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        asked = _question(agent, task_id)
        results: list[httpx.Response] = []

        def poll() -> None:
            with httpx.Client(
                base_url=secured.url, headers=secured.headers("agent"), timeout=60
            ) as waiter:
                results.append(waiter.get(f"/api/v1/requests/{asked['id']}", params={"wait": 30}))

        thread = threading.Thread(target=poll)
        thread.start()
        app = secured.server.app
        assert app is not None
        service = app.state.services.requests
        wait_until(lambda: service.waiting(asked["id"]) == 1, message="the long poll to wait")
        answered = admin.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": "main"})
        assert answered.status_code == 200
        thread.join(20)  # well before the 30 s the poll asked for
        assert not thread.is_alive(), "the long poll did not return on the answer"
        assert results[0].status_code == 200
        assert (results[0].json()["status"], results[0].json()["answer"]) == ("answered", "main")
        assert service.waiting(asked["id"]) == 0
        again = agent.get(f"/api/v1/requests/{asked['id']}", params={"wait": 30})
        assert again.json()["status"] == "answered"
        assert agent.get(f"/api/v1/requests/{asked['id']}", params={"wait": 31}).status_code == 422


def test_requests_expire(secured: SecureServer) -> None:
    """A request not answered by ``expires_in`` expires (by system:requests, logged); a
    long poll on it returns then; answering it afterwards is a 409."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        asked = _question(agent, task_id, expires_in=0.3)
        assert asked["expires_at"]
        polled = agent.get(f"/api/v1/requests/{asked['id']}", params={"wait": 30}, timeout=40)
        assert polled.json()["status"] == "expired", polled.text
        assert polled.json()["resolved_by"] == "system:requests"
        assert (
            admin.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": 1}).status_code
            == 409
        )
        expired = [e for e in _log(admin, task_id) if e["event_type"] == "request.expired"]
        assert [e["actor"] for e in expired] == ["system:requests"]
        assert not _needs_input(admin, task_id)


def test_a_task_ending_cancels_its_open_requests(secured: SecureServer) -> None:
    """Completing a task (the agent's event) or cancelling it (a person's change) cancels its
    open requests in the same transaction, logged by whoever ended the task; an ended task
    takes no new requests (409)."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        first, second = _question(agent, task_id), _approval(agent, task_id)
        done = agent.post(f"/api/v1/tasks/{task_id}/events", json={"event_type": "task_completed"})
        assert done.status_code == 200, done.text
        assert len(done.json()["seqs"]) == 1  # the publisher's own event, one to one
        for request in (first, second):
            found = admin.get(f"/api/v1/requests/{request['id']}").json()
            assert (found["status"], found["resolved_by"]) == ("cancelled", "agent:agent_bot")
        log = _log(admin, task_id)
        kinds = [e["event_type"] for e in log]
        assert kinds.index("task_completed") < kinds.index("request.cancelled")
        assert kinds.count("request.cancelled") == 2
        assert not _needs_input(admin, task_id)
        late = agent.post(
            f"/api/v1/tasks/{task_id}/requests", json={"kind": "question", "question": "?"}
        )
        assert late.status_code == 409, late.text
        other = admin.post("/api/v1/tasks/", json={"title": "by a person"}).json()["id"]
        asked = _question(admin, other)
        assert admin.patch(f"/api/v1/tasks/{other}", json={"status": "cancelled"}).is_success
        found = admin.get(f"/api/v1/requests/{asked['id']}").json()
        assert found["status"] == "cancelled"
        assert found["resolved_by"] == asked["created_by"]  # the admin's token both times


def test_needs_input_filters_the_task_list(secured: SecureServer) -> None:
    """``?needs_input=true`` lists the tasks with an open request, ``false`` the others."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        waiting = _claimed(admin, agent, "waiting")
        idle = admin.post("/api/v1/tasks/", json={"title": "idle"}).json()["id"]
        asked = _question(agent, waiting)

        def ids(value: str) -> list[str]:
            page = admin.get("/api/v1/tasks/", params={"needs_input": value}).json()
            return [t["id"] for t in page["items"]]

        assert ids("true") == [waiting]
        assert ids("false") == [idle]
        admin.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": "x"})
        assert ids("true") == []
        assert sorted(ids("false")) == sorted([waiting, idle])
        replaced = admin.get(f"/api/v1/tasks/{idle}").json()
        assert admin.put(f"/api/v1/tasks/{idle}", json=replaced).status_code == 200


def test_an_open_request_survives_a_restart(secured: SecureServer) -> None:
    """A request open when the server restarts is still open afterwards, and is answered."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _claimed(admin, agent)
        asked = _question(agent, task_id)
    secured.server.restart()
    with secured.client("admin") as admin:
        assert admin.get(f"/api/v1/requests/{asked['id']}").json()["status"] == "open"
        assert _needs_input(admin, task_id)
        answered = admin.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": "main"})
        assert answered.json()["status"] == "answered"
        assert not _needs_input(admin, task_id)


def test_deleting_a_task_deletes_its_requests(secured: SecureServer) -> None:
    """A deleted task's requests go with it (404 afterwards); the inbox no longer lists them."""
    with secured.client("admin") as admin:
        task_id = admin.post("/api/v1/tasks/", json={"title": "short-lived"}).json()["id"]
        asked = _question(admin, task_id)
        assert admin.delete(f"/api/v1/tasks/{task_id}").status_code == 204
        assert admin.get(f"/api/v1/requests/{asked['id']}").status_code == 404
        assert admin.get("/api/v1/requests").json()["requests"] == []
        assert admin.get(f"/api/v1/tasks/{task_id}/requests").status_code == 404
