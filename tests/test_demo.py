"""``taskline serve --demo`` (what ``make run`` starts): a task progresses live within seconds,
on a server that checks who asks (as ``make run`` does), which prints the admin's sign-in link."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.auth import make_token
from tests.support.server import free_port

TASKLINE = str(Path(sys.executable).with_name("taskline"))


def test_demo_server_shows_the_builtin_agent_working(tmp_path: Path) -> None:
    """The demo board has sample tasks and a review task whose progress moves to done."""
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    viewer = make_token(database_url, "viewer")
    server = subprocess.Popen(
        [
            TASKLINE,
            "serve",
            "--demo",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--database-url",
            database_url,
        ],
        env={**os.environ, "TASKLINE_AUTH": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: set[float] = set()
    status = ""
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=5,
            headers={"Authorization": f"Bearer {viewer}"},
        ) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and status != "completed":
                try:
                    page = client.get("/api/v1/tasks/", params={"tag": "demo"}).json()
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                if page["items"]:
                    task = page["items"][0]
                    seen.add(task["progress"])
                    status = task["status"]
                time.sleep(0.2)
            assert status == "completed", f"demo task ended {status!r}"
            assert len(seen) >= 3  # progress was seen moving, not just before and after
            assert client.get("/api/v1/tasks/").json()["total"] >= 4  # the sample board too
            task_id = page["items"][0]["id"]
            assert "TODO" in client.get(f"/api/v1/tasks/{task_id}").json()["result"]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert "Live demo" in output
    assert f"http://127.0.0.1:{port}/auth/link?token=tl_" in output
