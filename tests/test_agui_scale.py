"""One AG-UI run per thread across processes (PostgreSQL + Redis, real ``taskline serve``
processes): a thread's run in progress on one process refuses a second run of it on another
(409, as on the same process), frees it when it ends, and a killed process's run frees its
thread within the lock's TTL (``TASKLINE_PRESENCE_TTL``). Redis stopped: a process keeps to
its own lock (runs go on, a second run on the same process is still refused)."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from taskline.bus.run_lock import RunLock
from taskline.domain.ids import new_id
from taskline.settings import Settings
from tests.support.agui import parse_sse, run_input
from tests.support.nodes import running_nodes
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis, private_redis
from tests.support.server import LiveServer
from tests.support.waiting import TIME_SCALE, async_wait_until
from tests.support.ws import open_ws

__all__ = ["private_redis"]  # the fixture, used by name

#: Seconds within which a killed process's run lock expires (the setting under test).
LOCK_TTL = 3.0


@pytest.fixture
def nodes(pg_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with running_nodes(
        pg_database_url, redis_url, tmp_path, 2, TASKLINE_PRESENCE_TTL=str(LOCK_TTL)
    ) as started:
        yield started


async def post_run(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST the run and return its frames once its body ends."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        response = await http.post("/api/v1/agui", json=body)
        assert response.status_code == 200, response.text
        return parse_sse(response.text)


async def run_command(ws: ClientConnection) -> dict[str, Any]:
    """The next ``run`` command the agent gets (other frames skipped)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if frame.get("command") == "run":
            return frame


async def assigned_task(url: str, agent_id: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        task_id = (await http.post("/api/v1/tasks/", json={"title": "run"})).json()["id"]
        await http.patch(f"/api/v1/tasks/{task_id}", json={"assigned_agent_id": agent_id})
    return str(task_id)


async def finish(url: str, task_id: str, run_id: str) -> None:
    ids = {"threadId": task_id, "runId": run_id}
    events = [{"type": "RUN_STARTED", **ids}, {"type": "RUN_FINISHED", **ids, "result": 1}]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        posted = await http.post(
            f"/api/v1/tasks/{task_id}/events", params={"format": "agui"}, json=events
        )
    assert posted.status_code == 200, posted.text


async def test_a_run_in_progress_on_one_process_refuses_a_second_on_another(
    nodes: list[ServerProcess],
) -> None:
    """The agent serves a run posted to A; a run of the same thread posted to B is a 409
    problem naming it; once the first has finished, B takes a run of the thread, which the
    agent (still connected to A) serves."""
    a, b = nodes
    async with open_ws(f"{a.ws_url}/ws/agents/agent_runner") as ws:
        json.loads(await ws.recv())  # welcome
        task_id = await assigned_task(a.url, "agent_runner")
        first = run_input(task_id, "first")
        runner = asyncio.create_task(post_run(a.url, first))
        await run_command(ws)
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
            second = await on_b.post("/api/v1/agui", json=run_input(task_id, "second"))
            assert second.status_code == 409, second.text
            assert second.headers["content-type"] == "application/problem+json"
            assert first["runId"] in second.json()["detail"]

            await finish(b.url, task_id, first["runId"])
            frames = await asyncio.wait_for(runner, 30)
            assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_FINISHED"]
            # free on every process again: B takes the thread's next run, and the agent,
            # connected to A, gets its run command through the relay and serves it
            third = run_input(task_id, "third")
            later = asyncio.create_task(post_run(b.url, third))
            command = await run_command(ws)
            assert command["task_id"] == task_id
            assert command["run"]["runId"] == third["runId"]
            await finish(a.url, task_id, third["runId"])  # published on A, streamed by B
            frames = await asyncio.wait_for(later, 30)
            assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_FINISHED"]
            assert frames[-1]["runId"] == third["runId"]


async def test_a_killed_process_frees_its_runs_threads_within_the_ttl(
    nodes: list[ServerProcess],
) -> None:
    """kill -9 of A while its run streams: B refuses the thread's runs before the kill and
    takes one within the lock's TTL after it."""
    a, b = nodes
    async with open_ws(f"{a.ws_url}/ws/agents/agent_doomed") as ws:
        json.loads(await ws.recv())  # welcome
        task_id = await assigned_task(a.url, "agent_doomed")
        runner = asyncio.create_task(post_run(a.url, run_input(task_id, "first")))
        await run_command(ws)
        async with httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
            before = await on_b.post("/api/v1/agui", json=run_input(task_id, "too soon"))
            assert before.status_code == 409, before.text
            a.kill()
            with pytest.raises(httpx.HTTPError):
                await runner

            async def free() -> bool:
                answer = await on_b.post("/api/v1/agui", json=run_input(task_id, "again"))
                return answer.status_code == 200

            # the bound under test, plus two seconds for these polls on a busy machine
            await async_wait_until(
                free,
                message=lambda: f"the killed run's thread free within {LOCK_TTL:g} s",
                timeout=(LOCK_TTL + 2.0) * TIME_SCALE,
            )


async def test_with_redis_stopped_a_process_keeps_to_its_own_run_lock(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Redis killed: a run is still served (no 503), a second run of its thread on the same
    process is still a 409, and the thread is free again once the first has finished."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", redis_url=private_redis.url
    )
    server = LiveServer(settings)
    server.start()
    try:
        private_redis.kill()
        async with open_ws(f"{server.ws_url}/ws/agents/agent_alone") as ws:
            json.loads(await ws.recv())  # welcome
            task_id = await assigned_task(server.url, "agent_alone")
            first = run_input(task_id, "first")
            runner = asyncio.create_task(post_run(server.url, first))
            await run_command(ws)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                second = await http.post("/api/v1/agui", json=run_input(task_id, "second"))
                assert second.status_code == 409, second.text
                assert first["runId"] in second.json()["detail"]
            await finish(server.url, task_id, first["runId"])
            frames = await asyncio.wait_for(runner, 30)
            assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_FINISHED"]
            again = asyncio.create_task(post_run(server.url, run_input(task_id, "third")))
            assert (await run_command(ws))["run"]["messages"][0]["content"] == "third"
        assert (await asyncio.wait_for(again, 30))[-1]["type"] == "RUN_ERROR"  # agent left
    finally:
        server.stop()


async def test_a_run_never_frees_another_runs_lock_and_a_lock_left_behind_expires(
    redis_url: str,
) -> None:
    """RunLock on the test Redis: the second run is told who holds the thread, its release
    frees nothing; the holder's does. A lock nobody refreshes (a dead process's) is gone
    within its TTL."""
    lock = RunLock(redis_url, ttl=LOCK_TTL, prefix=new_id("test"))
    try:
        assert await lock.acquire("task_one", "run_1") == "run_1"
        assert await lock.acquire("task_one", "run_2") == "run_1"
        assert await lock.acquire("task_one", "run_1") == "run_1"  # extended, still its
        assert await lock.release("task_one", "run_2") is False
        assert await lock.holder("task_one") == "run_1"
        assert await lock.release("task_one", "run_1") is True
        assert await lock.holder("task_one") is None
        assert await lock.acquire("task_one", "run_2") == "run_2"

        async def expired() -> bool:
            return await lock.holder("task_one") is None

        await async_wait_until(
            expired,
            message=lambda: f"the lock nobody refreshes gone within {LOCK_TTL:g} s",
            timeout=(LOCK_TTL + 2.0) * TIME_SCALE,
        )
    finally:
        await lock.close()
