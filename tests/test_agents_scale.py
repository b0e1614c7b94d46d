"""Agents across processes (PostgreSQL + Redis, three real ``taskline serve`` processes):
commands sent through one process reach the agent connected to another, commands for an
agent connected nowhere wait for it wherever it connects, presence is the same seen from
every process, and a process killed with SIGKILL takes its agents offline within
``presence_ttl``."""

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from taskline.domain.ids import new_id
from taskline.settings import Settings
from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis, private_redis
from tests.support.server import LiveServer
from tests.support.waiting import TIME_SCALE, async_wait_until
from tests.support.ws import open_ws

__all__ = ["private_redis"]  # the fixture, used by name

#: Seconds within which a dead process's agents show offline (the setting under test).
PRESENCE_TTL = 3.0


@pytest.fixture
def nodes(
    pg_database_url: str,
    redis_url: str,
    tmp_path: Path,
) -> Iterator[list[ServerProcess]]:
    """Three server processes on one PostgreSQL database and one Redis (a prefix of their
    own, so other tests' servers on the same Redis do not meet them)."""
    empty_database(pg_database_url)
    env = {
        "TASKLINE_REDIS_URL": redis_url,
        "TASKLINE_REDIS_PREFIX": new_id("test"),
        "TASKLINE_PRESENCE_TTL": str(PRESENCE_TTL),
        "TASKLINE_AUTH": "false",
    }
    first = ServerProcess(pg_database_url, tmp_path / "a.log", **env)
    # the first applies the migrations (two processes migrating one new database collide)
    others = [
        ServerProcess(
            pg_database_url, tmp_path / f"{n}.log", **env, TASKLINE_MIGRATE_ON_START="false"
        )
        for n in "bc"
    ]
    started = [first, *others]
    try:
        first.start()
        with ThreadPoolExecutor(len(others)) as pool:  # each start waits for its /health
            list(pool.map(lambda node: node.start(), others))
        yield started
    finally:
        for node in started:
            node.stop()


async def frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def status_on(node: ServerProcess, agent_id: str) -> str:
    return await status_on_url(node.url, agent_id)


async def status_on_url(url: str, agent_id: str) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        return str((await client.get(f"/api/v1/agents/{agent_id}")).json()["status"])


async def test_commands_and_answers_sent_through_one_process_reach_the_agent_on_another(
    nodes: list[ServerProcess],
) -> None:
    """The agent is connected to A; a pause, a message and a request's answer sent through
    C reach it on A, and B shows it online."""
    a, b, c = nodes
    async with (
        httpx.AsyncClient(base_url=c.url) as on_c,
        open_ws(f"{a.ws_url}/ws/agents/agent_far?name=Far") as ws,
    ):
        assert (await frame(ws))["type"] == "welcome"
        assert await status_on(b, "agent_far") == "idle"
        created = await on_c.post(
            "/api/v1/tasks/",
            json={"title": "far", "assigned_agent_id": "agent_far", "status": "in_progress"},
        )
        task_id = created.json()["id"]

        paused = (await on_c.post(f"/api/v1/tasks/{task_id}/pause")).json()
        assert paused["status"] == "paused" and paused["delivered"] is True
        command = await frame(ws)
        assert (command["type"], command["command"], command["task_id"]) == (
            "command",
            "pause",
            task_id,
        )
        posted = await on_c.post(f"/api/v1/tasks/{task_id}/messages", json={"content": "hello"})
        assert posted.status_code == 201 and posted.json()["delivered"] is True
        message = await frame(ws)
        assert message["command"] == "message" and message["message"]["content"] == "hello"

        asked = await on_c.post(
            f"/api/v1/tasks/{task_id}/requests", json={"kind": "question", "question": "Which?"}
        )
        assert asked.status_code == 201, asked.text
        answered = await on_c.post(
            f"/api/v1/requests/{asked.json()['id']}/answer", json={"answer": "this one"}
        )
        assert answered.status_code == 200, answered.text
        outcome = await frame(ws)
        assert (outcome["type"], outcome["event_type"]) == ("request", "request.answered")
        assert outcome["request"] == answered.json()


async def test_commands_for_an_agent_connected_nowhere_wait_for_it_on_any_process(
    nodes: list[ServerProcess],
) -> None:
    """Sent through C while the agent is away, delivered in order when it connects to B; an
    agent leaving A for B is closed on A (4000) and stays online."""
    a, b, c = nodes
    async with httpx.AsyncClient(base_url=c.url) as on_c:
        await on_c.post("/api/v1/agents/", json={"id": "agent_away", "name": "Away"})
        created = await on_c.post(
            "/api/v1/tasks/",
            json={"title": "away", "assigned_agent_id": "agent_away", "status": "in_progress"},
        )
        task_id = created.json()["id"]
        posted = await on_c.post(f"/api/v1/tasks/{task_id}/messages", json={"content": "first"})
        assert posted.json()["delivered"] is False
        cancelled = (await on_c.post(f"/api/v1/tasks/{task_id}/cancel")).json()
        assert cancelled["delivered"] is False

        async with open_ws(f"{a.ws_url}/ws/agents/agent_away") as on_a:
            assert (await frame(on_a))["type"] == "welcome"
            first, second = await frame(on_a), await frame(on_a)
            assert (first["command"], first["message"]["content"]) == ("message", "first")
            assert second["command"] == "cancel"

            async with open_ws(f"{b.ws_url}/ws/agents/agent_away") as on_b:
                assert (await frame(on_b))["type"] == "welcome"
                with pytest.raises(ConnectionClosed) as closed:
                    await frame(on_a)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
                assert await status_on(c, "agent_away") == "idle"
                again = await on_c.post(
                    f"/api/v1/tasks/{task_id}/messages", json={"content": "on B now"}
                )
                assert again.json()["delivered"] is True
                assert (await frame(on_b))["message"]["content"] == "on B now"

        async def offline() -> bool:
            return await status_on(c, "agent_away") == "offline"

        await async_wait_until(offline, message="agent_away to go offline after leaving B")


async def test_a_killed_process_takes_its_agents_offline_within_the_presence_ttl(
    nodes: list[ServerProcess],
) -> None:
    """kill -9 of A: nothing on A marks its agent offline, yet B shows it offline within
    ``presence_ttl`` (the other processes sweep the presence keys that expired)."""
    a, b, _ = nodes
    async with open_ws(f"{a.ws_url}/ws/agents/agent_crash") as ws:
        assert (await frame(ws))["type"] == "welcome"
        assert await status_on(b, "agent_crash") == "idle"
        a.kill()

        async def offline() -> bool:
            return await status_on(b, "agent_crash") == "offline"

        # the deadline is the bound under test, plus two seconds for the sweep's own reads and
        # writes (and these polls) on a busy machine
        await async_wait_until(
            offline,
            message=lambda: f"agent_crash offline within {PRESENCE_TTL:g} s of the kill",
            timeout=(PRESENCE_TTL + 2.0) * TIME_SCALE,
        )


async def test_without_redis_a_process_queues_commands_as_one_process_does(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Redis stops: a command for an absent agent is still accepted (queued in the process's
    memory) and delivered when the agent connects there."""
    url = private_redis.url
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}",
        redis_url=url,
        presence_ttl=PRESENCE_TTL,
    )
    server = LiveServer(settings)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            await client.post("/api/v1/agents/", json={"id": "agent_alone", "name": "Alone"})
            created = await client.post(
                "/api/v1/tasks/", json={"title": "alone", "assigned_agent_id": "agent_alone"}
            )
            task_id = created.json()["id"]
            private_redis.kill()
            posted = await client.post(
                f"/api/v1/tasks/{task_id}/messages", json={"content": "kept here"}
            )
            assert posted.status_code == 201 and posted.json()["delivered"] is False
            async with open_ws(f"{server.ws_url}/ws/agents/agent_alone") as ws:
                assert (await frame(ws))["type"] == "welcome"
                assert (await frame(ws))["message"]["content"] == "kept here"
                assert await status_on_url(server.url, "agent_alone") == "idle"
    finally:
        server.stop()
