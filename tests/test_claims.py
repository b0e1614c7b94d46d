"""Claiming tasks with leases, against a real server on SQLite and PostgreSQL: claims,
renewals, releases, expiry, fencing of late writes, who may, filters, and 20 agents racing
for 100 tasks."""

import asyncio
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.support.auth import SecureServer, make_token, secure_server
from tests.support.waiting import wait_until

AGENT = "agent_bot"
CLAIM = "/api/v1/tasks/claim"


@pytest.fixture
def secured(database_url: str) -> Iterator[SecureServer]:
    with secure_server(database_url, lease_sweep_interval=0.1) as server:
        yield server


def _task(admin: httpx.Client, title: str, **fields: object) -> str:
    created = admin.post("/api/v1/tasks/", json={"title": title, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _log(admin: httpx.Client, task_id: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    return events


def _leases(log: list[dict[str, object]]) -> list[dict[str, object]]:
    """The ``lease`` members of a log's ``task_updated`` events, with their actors."""
    found = []
    for event in log:
        data = event["data"]
        assert isinstance(data, dict)
        if event["event_type"] == "task_updated" and "lease" in data:
            found.append({**data["lease"], "actor": event["actor"]})
    return found


def _agent(secured: SecureServer, agent_id: str) -> httpx.Client:
    token = make_token(secured.database_url, "agent", agent_id=agent_id, name=agent_id)
    return httpx.Client(
        base_url=secured.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    )


def _when(text: object) -> datetime:
    assert isinstance(text, str)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_claim_release_and_reclaim(secured: SecureServer) -> None:
    """A claim takes the most urgent, then oldest, pending task: in_progress, assigned to the
    agent, with a lease (holder, fencing token, expiry) on the document and in the log; 204
    when nothing is left. Releasing gives it back (pending, unassigned); the next claim of it
    has the next fencing token."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        old = _task(admin, "old")
        urgent = _task(admin, "urgent", priority="urgent")
        newer = _task(admin, "newer")
        first = agent.post(CLAIM)
        assert first.status_code == 200, first.text
        task = first.json()
        assert task["id"] == urgent
        assert (task["status"], task["assigned_agent_id"]) == ("in_progress", AGENT)
        assert task["lease"]["agent_id"] == AGENT and task["lease"]["token"] == 1
        assert first.headers["ETag"] == f'"{task["version"]}"' and task["version"] == 2
        assert admin.get(f"/api/v1/tasks/{urgent}").json()["lease"] == task["lease"]
        listed = admin.get("/api/v1/tasks/", params={"status": "in_progress"}).json()["items"]
        assert [t["lease"]["agent_id"] for t in listed] == [AGENT]
        assert [t["lease"] for t in admin.get("/api/v1/tasks/").json()["items"]].count(None) == 2
        assert agent.post(CLAIM).json()["id"] == old
        assert agent.post(CLAIM).json()["id"] == newer
        assert agent.post(CLAIM).status_code == 204

        log = _log(admin, urgent)
        assert [e["event_type"] for e in log] == ["task_created", "task_updated", "task_started"]
        assert log[1]["actor"] == f"agent:{AGENT}"
        assert sorted(log[1]["data"]["changes"]) == ["assigned_agent_id", "lease", "status"]
        assert _leases(log)[0]["action"] == "claimed"

        released = agent.post(f"/api/v1/tasks/{urgent}/release")
        assert released.status_code == 200, released.text
        back = released.json()
        assert (back["status"], back["assigned_agent_id"], back["lease"]) == ("pending", None, None)
        assert back["version"] == 3
        assert [lease["action"] for lease in _leases(_log(admin, urgent))] == [
            "claimed",
            "released",
        ]
        again = agent.post(CLAIM).json()
        assert again["id"] == urgent and again["lease"]["token"] == 2
        # releasing what one does not hold is a 409 naming who does (nobody, here)
        assert agent.post(f"/api/v1/tasks/{urgent}/release").status_code == 200
        refused = agent.post(f"/api/v1/tasks/{urgent}/release")
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["holder"] is None and "nobody holds" in refused.json()["detail"]
        assert agent.post("/api/v1/tasks/task_nothere/release").status_code == 404


def test_a_task_assigned_before_stays_assigned_when_given_back(secured: SecureServer) -> None:
    with secured.client("admin") as admin, secured.client("agent") as agent:
        admin.post("/api/v1/agents/", json={"id": AGENT, "name": "Bot"})
        mine = _task(admin, "mine", assigned_agent_id=AGENT)
        assert agent.post(CLAIM).json()["id"] == mine
        back = agent.post(f"/api/v1/tasks/{mine}/release").json()
        assert (back["status"], back["assigned_agent_id"]) == ("pending", AGENT)
        # next-task keeps working: the oldest pending task assigned to the agent
        assert admin.get(f"/api/v1/agents/{AGENT}/next-task").json()["id"] == mine


def test_renewing_extends_the_lease(secured: SecureServer) -> None:
    """An explicit renewal, and any event the holder publishes, move the expiry on."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _task(admin, "renewed")
        claimed = agent.post(CLAIM, json={"lease_seconds": 30}).json()
        first = _when(claimed["lease"]["expires_at"])
        renewed = agent.post(f"/api/v1/tasks/{task_id}/lease", json={"lease_seconds": 600})
        assert renewed.status_code == 200, renewed.text
        later = _when(renewed.json()["lease"]["expires_at"])
        assert (later - first).total_seconds() > 500
        assert renewed.json()["lease"]["token"] == 1
        assert _leases(_log(admin, task_id))[-1]["action"] == "renewed"
        published = agent.post(
            f"/api/v1/tasks/{task_id}/events",
            json={"event_type": "progress_update", "data": {"progress": 0.5}},
        )
        assert published.status_code == 200, published.text
        heartbeat = _when(admin.get(f"/api/v1/tasks/{task_id}").json()["lease"]["expires_at"])
        assert heartbeat > later  # 600 s from the publish, which came after the renewal
        short = agent.post(f"/api/v1/tasks/{task_id}/lease", json={"lease_seconds": 0.1})
        assert short.status_code == 422
        assert agent.post(CLAIM, json={"lease_seconds": 10**9}).status_code == 422


def test_who_may_claim(secured: SecureServer) -> None:
    """Agents claim for themselves; a person (member, admin) for an agent it names; a viewer
    not at all; an agent's token naming another agent is a 403."""
    with (
        secured.client("admin") as admin,
        secured.client("member") as member,
        secured.client("viewer") as viewer,
        secured.client("agent") as agent,
    ):
        admin.post("/api/v1/agents/", json={"id": "agent_other", "name": "Other"})
        task_id = _task(admin, "wanted")
        refused = viewer.post(CLAIM)
        assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
        with secured.client() as anonymous:
            assert anonymous.post(CLAIM).status_code == 401
        assert agent.post(CLAIM, json={"agent_id": "agent_other"}).status_code == 403
        unnamed = member.post(CLAIM)
        assert unnamed.status_code == 422 and unnamed.json()["errors"][0]["field"] == "agent_id"
        assert member.post(CLAIM, json={"agent_id": "agent_nobody"}).status_code == 404
        claimed = member.post(CLAIM, json={"agent_id": "agent_other"})
        assert claimed.status_code == 200 and claimed.json()["lease"]["agent_id"] == "agent_other"
        assert _log(admin, task_id)[1]["actor"] == "person:ana"
        # the agent that does not hold it may neither renew nor release it
        for path in ("lease", "release"):
            other = agent.post(f"/api/v1/tasks/{task_id}/{path}")
            assert other.status_code in (403, 409), other.text
        assert viewer.post(f"/api/v1/tasks/{task_id}/release").status_code == 403
        # a person may take the task back
        assert member.post(f"/api/v1/tasks/{task_id}/release").json()["status"] == "pending"


def test_filters(secured: SecureServer) -> None:
    """Tags (any of them), and assigned: mine, unassigned, any (mine or nobody's)."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        for agent_id in (AGENT, "agent_other"):
            admin.post("/api/v1/agents/", json={"id": agent_id, "name": agent_id})
        docs = _task(admin, "docs", tags=["docs"])
        code = _task(admin, "code", tags=["python", "api"])
        mine = _task(admin, "mine", assigned_agent_id=AGENT)
        _task(admin, "theirs", assigned_agent_id="agent_other")
        assert agent.post(CLAIM, json={"tags": ["rust"]}).status_code == 204
        assert agent.post(CLAIM, json={"tags": ["api", "go"]}).json()["id"] == code
        assert agent.post(CLAIM, json={"assigned": "mine"}).json()["id"] == mine
        assert agent.post(CLAIM, json={"assigned": "mine"}).status_code == 204
        assert agent.post(CLAIM, json={"assigned": "unassigned"}).json()["id"] == docs
        assert agent.post(CLAIM).status_code == 204  # only agent_other's is left
        bad = agent.post(CLAIM, json={"assigned": "everyone"})
        assert bad.status_code == 422
        assert agent.post(CLAIM, json={"unknown": 1}).status_code == 422


def test_an_expired_lease_returns_the_task_and_late_writes_are_refused(
    secured: SecureServer,
) -> None:
    """A holder that stops heartbeating loses the task after its lease: the server gives it
    back (logged by system:leases, naming the holder and when it expired); the old holder's
    late publish and late completion are refused with 409 — first saying it went back to
    pending, then, once another agent claimed it, naming the new holder."""
    with (
        secured.client("admin") as admin,
        _agent(secured, "agent_slow") as slow,
        _agent(secured, "agent_fast") as fast,
    ):
        task_id = _task(admin, "contested")
        held = slow.post(CLAIM, json={"lease_seconds": 1})
        assert held.status_code == 200, held.text
        expires_at = held.json()["lease"]["expires_at"]
        wait_until(
            lambda: admin.get(f"/api/v1/tasks/{task_id}").json()["status"] == "pending",
            message="the expired lease to give the task back",
        )
        back = admin.get(f"/api/v1/tasks/{task_id}").json()
        assert (back["assigned_agent_id"], back["lease"]) == (None, None)
        expiry = _leases(_log(admin, task_id))[-1]
        assert expiry["action"] == "expired" and expiry["actor"] == "system:leases"
        assert expiry["agent_id"] == "agent_slow" and expiry["token"] == 1
        assert expiry["expires_at"] == expires_at
        assert "agent_slow" in str(expiry["reason"]) and "expired" in str(expiry["reason"])

        progress = {"event_type": "progress_update", "data": {"progress": 0.9}}
        complete = {"event_type": "task_completed", "data": {"result": "done"}}
        events = f"/api/v1/tasks/{task_id}/events"
        pending = slow.post(events, json=progress)
        assert pending.status_code == 409, pending.text
        assert pending.json()["holder"] is None and "pending" in pending.json()["detail"]

        taken = fast.post(CLAIM)
        assert taken.status_code == 200 and taken.json()["id"] == task_id
        assert taken.json()["lease"]["token"] == 2
        for late in (progress, complete):
            refused = slow.post(events, json=late)
            assert refused.status_code == 409, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            problem = refused.json()
            assert problem["type"].endswith("/lease-conflict")
            assert problem["holder"] == "agent_fast" and problem["lease_token"] == 2
            assert "agent_fast" in problem["detail"]
        for path in ("lease", "release"):
            late = slow.post(f"/api/v1/tasks/{task_id}/{path}")
            assert late.status_code == 409 and late.json()["holder"] == "agent_fast"
        late_message = slow.post(f"/api/v1/tasks/{task_id}/messages", json={"content": "me!"})
        assert late_message.status_code == 409
        # the new holder works on; its completion ends the lease
        assert fast.post(events, json=progress).status_code == 200
        assert fast.post(events, json=complete).status_code == 200
        done = admin.get(f"/api/v1/tasks/{task_id}").json()
        assert (done["status"], done["lease"], done["assigned_agent_id"]) == (
            "completed",
            None,
            "agent_fast",
        )
        assert done["progress"] == 0.9 or done["progress"] == 1.0
        assert slow.post(events, json=progress).status_code == 409  # still not its task


def test_a_person_taking_a_task_away_fences_its_holder(secured: SecureServer) -> None:
    """Cancelling a claimed task ends its lease; the holder's late writes are refused."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        task_id = _task(admin, "cancelled")
        assert agent.post(CLAIM).status_code == 200
        assert admin.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
        assert admin.get(f"/api/v1/tasks/{task_id}").json()["lease"] is None
        late = agent.post(
            f"/api/v1/tasks/{task_id}/events",
            json={"event_type": "progress_update", "data": {"progress": 1}},
        )
        assert late.status_code == 409 and "cancelled" in late.json()["detail"]


def test_twenty_agents_race_for_a_hundred_tasks(secured: SecureServer) -> None:
    """20 agents (20 tokens, each its own connection) claim concurrently until nothing is
    left: every task is claimed exactly once, by the agent whose lease it carries, with no
    error."""
    with secured.client("admin") as admin:
        ids = {_task(admin, f"task {i}") for i in range(100)}
        agents = [f"agent_racer{i}" for i in range(20)]
        tokens = {a: make_token(secured.database_url, "agent", agent_id=a, name=a) for a in agents}

        async def race(agent_id: str) -> tuple[list[str], list[int]]:
            claimed: list[str] = []
            errors: list[int] = []
            headers = {"Authorization": f"Bearer {tokens[agent_id]}"}
            async with httpx.AsyncClient(base_url=secured.url, headers=headers, timeout=30) as http:
                while True:
                    answer = await http.post(CLAIM)
                    if answer.status_code == 204:
                        return claimed, errors
                    if answer.status_code != 200:
                        errors.append(answer.status_code)
                        continue
                    task = answer.json()
                    assert task["lease"]["agent_id"] == agent_id
                    claimed.append(task["id"])

        async def all_of_them() -> list[tuple[list[str], list[int]]]:
            return await asyncio.gather(*(race(a) for a in agents))

        results = asyncio.run(all_of_them())
        claims = [task_id for claimed, _ in results for task_id in claimed]
        assert [errors for _, errors in results] == [[] for _ in agents]
        assert sorted(claims) == sorted(ids)  # each task once: none lost, none twice
        by_agent = dict(zip(agents, (claimed for claimed, _ in results), strict=True))
        everything = admin.get("/api/v1/tasks/", params={"limit": 500}).json()["items"]
        for task in everything:
            holder = task["lease"]["agent_id"]
            assert task["status"] == "in_progress" and task["assigned_agent_id"] == holder
            assert task["id"] in by_agent[holder] and task["lease"]["token"] == 1
