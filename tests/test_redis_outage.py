"""Redis is an accelerator, not a dependency: two real ``taskline serve`` processes on one
PostgreSQL database and a private ``redis-server`` the test stops and starts again.

While Redis is down ``/health`` answers 200 ``degraded: ["redis"]``, publishing still
commits to the log and a subscriber on the other process gets the event from its process's
poll of the log; once Redis is back the status is ``ok`` again and events published then
reach subscribers on the other process through Redis.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskline.service.requests import MAX_WAIT
from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.redis_server import PrivateRedis
from tests.support.redis_server import private_redis as private_redis  # the fixture
from tests.support.waiting import WAIT, async_holds_for, wait_until
from tests.support.ws import collect_events, open_ws, receive_until


@pytest.fixture
def nodes(
    pg_database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on one PostgreSQL database sharing the private Redis."""
    empty_database(pg_database_url)
    env = {"TASKLINE_REDIS_URL": private_redis.url, "TASKLINE_AUTH": "false"}
    first = ServerProcess(pg_database_url, tmp_path / "a.log", **env)
    # the first applies the migrations; the second finds them applied
    second = ServerProcess(
        pg_database_url, tmp_path / "b.log", **env, TASKLINE_MIGRATE_ON_START="false"
    )
    try:
        first.start(timeout=2 * WAIT)  # a loaded machine starts slowly
        second.start(timeout=2 * WAIT)
        yield first, second
    finally:
        first.stop()
        second.stop()


def health(node: ServerProcess) -> dict[str, Any]:
    """``GET /health`` of ``node``, which must answer 200 whether Redis is up or not."""
    answer = httpx.get(f"{node.url}/health", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wait_for_status(node: ServerProcess, status: str) -> dict[str, Any]:
    """Poll ``/health`` of ``node`` until its status is ``status``; return that answer."""
    seen: list[dict[str, Any]] = []

    def reached() -> dict[str, Any] | None:
        body = health(node)
        seen.append(body)
        return body if body["status"] == status else None

    return wait_until(
        reached,
        message=lambda: f"/health of {node.url} to say {status!r}; last: {seen[-1:]}",
        interval=0.1,
    )


async def test_health_degrades_without_redis_and_publishing_keeps_committing(
    nodes: tuple[ServerProcess, ServerProcess], private_redis: PrivateRedis
) -> None:
    """Redis killed: both processes say degraded, a publish commits and reaches the
    subscriber on the second process from the log; Redis back: ok again, and that subscriber
    gets every seq once, in order."""
    first, second = nodes
    for node in nodes:
        body = wait_for_status(node, "ok")
        assert body["degraded"] == []
        assert body["database"] == "postgresql"
    with httpx.Client(base_url=first.url, timeout=30) as on_first:
        task_id = on_first.post("/api/v1/tasks/", json={"title": "outage"}).json()["id"]
        async with open_ws(f"{second.ws_url}/ws/tasks/{task_id}") as ws:
            await receive_until(ws, "connection_established")

            private_redis.kill()
            for node in nodes:
                body = wait_for_status(node, "degraded")
                assert body["degraded"] == ["redis"]
                assert body["database"] == "postgresql"
                assert body["node"]

            during = on_first.post(
                f"/api/v1/tasks/{task_id}/events",
                json={"event_type": "progress_update", "data": {"progress": 0.5}},
            )
            assert during.status_code in {200, 201}, during.text
            during_seq = during.json()["last_seq"]
            log = on_first.get(f"/api/v1/tasks/{task_id}/events").json()
            assert during_seq in [e["seq"] for e in log["events"]]
            # with nothing published after it, the viewer on the second process still gets
            # it while Redis is down: its process polls the log (TASKLINE_REDIS_DOWN_POLL)
            kept = await collect_events(ws, during_seq)
            assert not private_redis.answers(), "still during the outage"

            private_redis.start()
            for node in nodes:
                assert wait_for_status(node, "ok")["degraded"] == []

            # a viewer that connects now starts at the head (its process knows it from the
            # poll), then gets the live events through Redis
            async with open_ws(f"{second.ws_url}/ws/tasks/{task_id}") as again:
                hello = (await receive_until(again, "connection_established"))[-1]
                assert hello["data"]["last_seq"] == during_seq
                after = on_first.post(
                    f"/api/v1/tasks/{task_id}/events",
                    json={"event_type": "progress_update", "data": {"progress": 1.0}},
                )
                assert after.status_code in {200, 201}, after.text
                last = after.json()["last_seq"]
                received = await collect_events(again, last)
                # the viewer that stayed through the outage: on, once each
                kept += await collect_events(ws, last)
    assert [e["seq"] for e in received] == [last]
    assert [e["seq"] for e in kept] == list(range(kept[0]["seq"], last + 1))
    assert kept[-2]["seq"] == during_seq


async def test_a_long_poll_ends_when_another_process_answers_while_redis_is_down(
    nodes: tuple[ServerProcess, ServerProcess], private_redis: PrivateRedis
) -> None:
    """Redis killed: a person's long poll on the second process (on a task nobody watches
    there, so the log poll does not cover it) still ends with the answer given on the first,
    long before its wait runs out."""
    first, second = nodes
    for node in nodes:
        wait_for_status(node, "ok")
    with httpx.Client(base_url=first.url, timeout=30) as on_first:
        task_id = on_first.post("/api/v1/tasks/", json={"title": "asks"}).json()["id"]
        asked = on_first.post(
            f"/api/v1/tasks/{task_id}/requests",
            json={"kind": "question", "question": "Ship it?"},
        )
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["id"]
        private_redis.kill()
        for node in nodes:
            wait_for_status(node, "degraded")

        async with httpx.AsyncClient(base_url=second.url, timeout=60) as on_second:
            poll = asyncio.create_task(
                on_second.get(f"/api/v1/requests/{request_id}", params={"wait": MAX_WAIT})
            )
            # a poll of an open request is held; nothing outside the process shows that it
            # has begun to wait, so the only sign is that it has not returned for a while
            await async_holds_for(
                lambda: not poll.done(), 1.0, message="the long poll returned at once"
            )
            async with httpx.AsyncClient(base_url=first.url, timeout=30) as answering:
                answered = await answering.post(
                    f"/api/v1/requests/{request_id}/answer", json={"answer": "yes"}
                )
            assert answered.status_code == 200, answered.text
            async with asyncio.timeout(MAX_WAIT / 2):  # the wait itself would run MAX_WAIT
                got = await poll
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "answered"
    assert got.json()["answer"] == "yes"
