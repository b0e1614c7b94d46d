"""``taskline serve --workers N``: several processes on one port, sharing events through Redis."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from taskline.cli.errors import ExitCode
from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.waiting import wait_until
from tests.support.ws import collect_events, open_ws, receive_until


def _pinned(url: str, nodes: int, stack: ExitStack) -> dict[str, httpx.Client]:
    """One keep-alive client per node: new clients are opened until each node has one (the
    kernel spreads new connections over the workers; a client keeps its connection)."""
    by_node: dict[str, httpx.Client] = {}

    def one_more() -> bool:
        client = stack.enter_context(httpx.Client(base_url=url, timeout=10))
        node = client.get("/health").json()["node"]
        by_node.setdefault(node, client)
        return len(by_node) == nodes

    wait_until(one_more, message=f"{nodes} workers to answer /health")
    return by_node


def _holding(clients: dict[str, httpx.Client]) -> Iterator[str]:
    """The nodes that hold a WebSocket connection now."""
    for node, client in clients.items():
        if client.get("/api/v1/websocket/status").json()["connections_total"]:
            yield node


@pytest.fixture
def two_workers(pg_database_url: str, redis_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """``taskline serve --workers 2`` on an empty PostgreSQL database and Redis, stopped after
    the test (SIGTERM: it must end cleanly)."""
    empty_database(pg_database_url)
    server = ServerProcess(
        pg_database_url, tmp_path / "serve.log", "--workers", "2", TASKLINE_REDIS_URL=redis_url
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0, server.log()


async def test_two_workers_answer_and_share_events(two_workers: ServerProcess) -> None:
    """serve --workers 2: both workers answer on the port; a subscriber held by one worker
    gets, in order, the events published through the other."""
    server = two_workers
    with ExitStack() as stack:
        clients = _pinned(server.url, 2, stack)
        first = next(iter(clients.values()))
        task_id = first.post("/api/v1/tasks/", json={"title": "shared"}).json()["id"]
        async with open_ws(f"{server.ws_url}/ws/tasks/{task_id}") as ws:
            await receive_until(ws, "connection_established")
            (held_by,) = list(_holding(clients))
            (other,) = [c for node, c in clients.items() if node != held_by]
            last = 0
            for start in range(0, 100, 10):
                events = [
                    {"event_type": "progress_update", "data": {"progress": n / 100}}
                    for n in range(start, start + 10)
                ]
                answer = other.post(f"/api/v1/tasks/{task_id}/events", json=events)
                last = answer.json()["last_seq"]
            received = await collect_events(ws, last)
    assert [e["seq"] for e in received] == list(range(2, last + 1))


def test_sqlite_with_several_workers_is_refused(tmp_path: Path) -> None:
    """serve --workers 2 on SQLite: one line on stderr, exit 2, no traceback, nothing served."""
    done = subprocess.run(
        [sys.executable, "-m", "taskline", "serve", "--workers", "2"],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "TASKLINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/t.db",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.USAGE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--workers 2 needs PostgreSQL" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "t.db").exists()
