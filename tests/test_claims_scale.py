"""Claims across processes (three real ``taskline serve`` processes on one PostgreSQL and
one Redis): many agents claiming at once through different processes get each task exactly
once (the others: 204, nothing left), and a lease that ran out is taken over by exactly one
of the agents racing for it (the fencing of its old holder is the database's, tested in
tests/test_claims.py)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.nodes import running_nodes
from tests.support.process import ServerProcess
from tests.support.waiting import async_wait_until

CLAIM = "/api/v1/tasks/claim"
AGENTS = 24


@pytest.fixture
def nodes(pg_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with running_nodes(
        pg_database_url, redis_url, tmp_path, TASKLINE_LEASE_SWEEP_INTERVAL="0.2"
    ) as started:
        yield started


async def _agents(node: ServerProcess, count: int, name: str) -> list[str]:
    ids = [f"agent_{name}{i}" for i in range(count)]
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        for agent_id in ids:
            made = await http.post("/api/v1/agents/", json={"id": agent_id, "name": agent_id})
            assert made.status_code == 201, made.text
    return ids


async def _race(
    nodes: list[ServerProcess], agents: list[str], **body: Any
) -> dict[str, httpx.Response]:
    """Every agent claims once, all at the same time, agent i through process i mod 3 (each
    its own connection); the answers by agent."""
    clients = [
        httpx.AsyncClient(base_url=nodes[i % len(nodes)].url, timeout=30)
        for i in range(len(agents))
    ]
    try:
        start = asyncio.Event()

        async def claim(http: httpx.AsyncClient, agent_id: str) -> httpx.Response:
            await start.wait()
            return await http.post(CLAIM, json={"agent_id": agent_id, **body})

        racers = [
            asyncio.create_task(claim(http, agent_id))
            for http, agent_id in zip(clients, agents, strict=True)
        ]
        await asyncio.sleep(0)  # every racer waits at the start line
        start.set()
        answers = await asyncio.gather(*racers)
    finally:
        for http in clients:
            await http.aclose()
    return dict(zip(agents, answers, strict=True))


async def _claimed_events(node: ServerProcess, task_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        events = (await http.get(f"/api/v1/tasks/{task_id}/events")).json()["events"]
    return [
        e["data"]["lease"]
        for e in events
        if e["event_type"] == "task_updated" and "lease" in e["data"]
    ]


async def test_agents_racing_through_three_processes_get_each_task_once(
    nodes: list[ServerProcess],
) -> None:
    """24 agents, 8 per process, claim 3 tasks at once: 3 get a task each (its lease theirs,
    token 1, one ``claimed`` in its log), the 21 others 204; no error."""
    a, b, _ = nodes
    agents = await _agents(a, AGENTS, "racer")
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http:
        made = [await http.post("/api/v1/tasks/", json={"title": f"t{i}"}) for i in range(3)]
    task_ids = {m.json()["id"] for m in made}

    answers = await _race(nodes, agents)
    assert sorted({r.status_code for r in answers.values()}) == [200, 204], {
        a: (r.status_code, r.text) for a, r in answers.items() if r.status_code not in (200, 204)
    }
    winners = {agent: r.json() for agent, r in answers.items() if r.status_code == 200}
    assert sorted(t["id"] for t in winners.values()) == sorted(task_ids)  # each task once
    assert sum(r.status_code == 204 for r in answers.values()) == AGENTS - 3
    for agent, task in winners.items():
        assert task["lease"]["agent_id"] == agent and task["lease"]["token"] == 1
    for node in nodes:  # every process reads the same holders
        async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
            for agent, task in winners.items():
                seen = (await http.get(f"/api/v1/tasks/{task['id']}")).json()
                assert (seen["status"], seen["lease"]["agent_id"]) == ("in_progress", agent)
    for task_id in task_ids:
        leases = await _claimed_events(a, task_id)
        assert [lease["action"] for lease in leases] == ["claimed"]


async def test_a_lease_that_ran_out_is_taken_over_by_one_agent_on_another_process(
    nodes: list[ServerProcess],
) -> None:
    """The holder claimed through A with a 1 s lease and went silent; once the task is back
    to pending, 12 agents race for it through the three processes: one gets it (token 2),
    the others 204; the log tells claimed, expired, claimed (by the winner)."""
    a, b, c = nodes
    [holder] = await _agents(a, 1, "holder")
    racers = await _agents(b, 12, "taker")
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
        task_id = (await on_b.post("/api/v1/tasks/", json={"title": "lease"})).json()["id"]
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as on_a:
        held = await on_a.post(CLAIM, json={"agent_id": holder, "lease_seconds": 1})
    assert held.status_code == 200 and held.json()["lease"]["token"] == 1

    async with httpx.AsyncClient(base_url=c.url, timeout=30) as on_c:

        async def pending() -> bool:
            return (await on_c.get(f"/api/v1/tasks/{task_id}")).json()["status"] == "pending"

        await async_wait_until(pending, message="the lease to run out and the task to go back")

        answers = await _race(nodes, racers)
        winners = [agent for agent, r in answers.items() if r.status_code == 200]
        assert len(winners) == 1, {agent: r.status_code for agent, r in answers.items()}
        assert sorted(r.status_code for r in answers.values()) == [200] + [204] * 11
        taken = answers[winners[0]].json()
        assert taken["id"] == task_id and taken["lease"]["token"] == 2
    leases = await _claimed_events(b, task_id)
    assert [lease["action"] for lease in leases] == ["claimed", "expired", "claimed"]
    assert leases[-1]["agent_id"] == winners[0]
