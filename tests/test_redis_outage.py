"""Redis is an accelerator, not a dependency: two real ``taskline serve`` processes on one
PostgreSQL database and a private ``redis-server`` the test stops and starts again.

While Redis is down ``/health`` answers 200 ``degraded: ["redis"]`` and publishing still
commits to the log; once Redis is back the status is ``ok`` again and events published then
reach a subscriber on the other process (with what it missed meanwhile, from the log).
"""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support.databases import empty_database, unavailable
from tests.support.process import ServerProcess
from tests.support.server import free_port
from tests.support.waiting import wait_until
from tests.support.ws import collect_events, open_ws, receive_until


class PrivateRedis:
    """A ``redis-server`` of this test's own on a spare port, stopped and started by pid."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        """Start it on its port (the same one after a stop); return once it answers PING."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, message=f"the private redis-server on port {self.port}")

    def kill(self) -> None:
        """End the process this object started (SIGKILL, by its pid) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """Never the system's Redis: a server of this test's own, killed at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server", "not installed (apt-get install redis-server)")
        raise AssertionError("unreachable")
    server = PrivateRedis(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


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
        first.start()
        second.start()
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
    """Redis killed: both processes say degraded, a publish commits; Redis back: ok again,
    and the subscriber on the second process gets every seq once, in order."""
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

            private_redis.start()
            for node in nodes:
                assert wait_for_status(node, "ok")["degraded"] == []

            # a viewer that connects now gets the log so far, then the live events through Redis
            async with open_ws(f"{second.ws_url}/ws/tasks/{task_id}") as again:
                await receive_until(again, "connection_established")
                after = on_first.post(
                    f"/api/v1/tasks/{task_id}/events",
                    json={"event_type": "progress_update", "data": {"progress": 1.0}},
                )
                assert after.status_code in {200, 201}, after.text
                last = after.json()["last_seq"]
                received = await collect_events(again, last)
                # the viewer that stayed through the outage: the missed seq from the log
                kept = await collect_events(ws, last)
    seqs = [e["seq"] for e in received]
    assert seqs == sorted(set(seqs)), "every seq once, in order"
    assert during_seq in seqs and seqs[-1] == last
    assert [e["seq"] for e in kept] == list(range(kept[0]["seq"], last + 1))
    assert during_seq in [e["seq"] for e in kept]
