"""``taskline watch`` driven in a real pseudo-terminal against a real server."""

import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from taskline.cli.watch_view import WatchView
from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.domain.models import utc_now
from tests.support.rest import publish
from tests.support.server import LiveServer

TASKLINE = str(Path(sys.executable).with_name("taskline"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class Terminal:
    """A process on a pseudo-terminal whose screen output is collected as plain text."""

    def __init__(self, *args: str) -> None:
        primary, secondary = pty.openpty()
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
        self.process = subprocess.Popen(
            args, stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True
        )
        os.close(secondary)
        self.fd = primary
        self.output = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += ANSI.sub("", chunk.decode("utf-8", "replace"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output):
                return
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared; screen ends with {self.output[-800:]!r}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        os.close(self.fd)


def test_watch_shows_progress_tool_calls_and_text_live(sqlite_server: LiveServer) -> None:
    """The terminal view follows progress, tool calls and streamed text, survives a
    server restart, and exits when the task is done."""
    with httpx.Client(base_url=sqlite_server.url) as client:
        task_id = client.post("/api/v1/tasks/", json={"title": "Watched task"}).json()["id"]
        terminal = Terminal(
            TASKLINE, "--url", sqlite_server.url, "watch", task_id, "--exit-when-done"
        )
        try:
            terminal.wait_for(r"Watched task")
            terminal.wait_for(r"● live")
            publish(
                client,
                task_id,
                {"event_type": "task_started"},
                {"event_type": "progress_update", "data": {"progress": 0.25, "confidence": 0.6}},
            )
            terminal.wait_for(r"25%")
            terminal.wait_for(r"Confidence: 60%")
            publish(
                client,
                task_id,
                {
                    "event_type": "tool_call.start",
                    "data": {"tool_call_id": "c1", "name": "read_file"},
                },
                {"event_type": "tool_call.end", "data": {"tool_call_id": "c1", "duration_ms": 42}},
                {"event_type": "message.start", "data": {"message_id": "m"}},
                {
                    "event_type": "message.delta",
                    "data": {"message_id": "m", "delta": "Reading the"},
                },
                {
                    "event_type": "message.delta",
                    "data": {"message_id": "m", "delta": " design notes"},
                },
            )
            terminal.wait_for(r"read_file\s+.*done\s+.*42 ms")
            terminal.wait_for(r"Reading the design notes")
            sqlite_server.stop()
            terminal.wait_for(r"● reconnecting")
            sqlite_server.start()
            terminal.wait_for(r"● live[^●]*$")
            publish(client, task_id, {"event_type": "progress_update", "data": {"progress": 0.75}})
            terminal.wait_for(r"75%")
            publish(client, task_id, {"event_type": "task_completed"})
            assert terminal.process.wait(20) == 0
            assert "100%" in terminal.output and "completed" in terminal.output
        finally:
            terminal.close()


def test_watch_of_an_unknown_task_is_a_one_line_error(sqlite_server: LiveServer) -> None:
    """An unknown task id exits 4 with one line, no traceback."""
    result = subprocess.run(
        [TASKLINE, "--url", sqlite_server.url, "watch", "task_none"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 4
    assert "task_none" in result.stderr and "Traceback" not in result.stderr


def test_watch_view_folds_events() -> None:
    """The view keeps the newest tool calls only and follows status and text."""
    view = WatchView("task_x", max_tool_calls=2)

    def event(seq: int, kind: WebSocketEventType, **data: object) -> WebSocketMessage:
        return WebSocketMessage(
            id=f"e{seq}", seq=seq, event_type=kind, data=data, timestamp=utc_now()
        )

    for n in range(3):
        view.apply(
            event(n + 1, WebSocketEventType.TOOL_CALL_START, tool_call_id=f"c{n}", name=f"t{n}")
        )
    view.apply(event(4, WebSocketEventType.TOOL_CALL_END, tool_call_id="c2", error="boom"))
    view.apply(event(5, WebSocketEventType.TASK_PAUSED))
    assert [line.name for line in view.tool_calls.values()] == ["t1", "t2"]
    assert view.tool_calls["c2"].state == "error" and view.status == "paused"
    assert view.last_seq == 5
