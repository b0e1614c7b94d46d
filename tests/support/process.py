"""A real Taskline server in its own process (``python -m taskline serve``), for tests that
measure the server alone (its memory) or kill it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import free_port
from tests.support.waiting import TIME_SCALE

__all__ = ["ServerProcess"]


class ServerProcess:
    """Start ``taskline serve`` on a free port (or ``port``) with ``TASKLINE_*`` settings from
    ``env`` and more options in ``args`` (``--workers 2``).

    Its output goes to ``log_path`` (read it with :meth:`log`); :meth:`stop` ends it.
    """

    def __init__(
        self, database_url: str, log_path: Path, *args: str, port: int | None = None, **env: str
    ) -> None:
        self.port = port if port is not None else free_port()
        self.args = args
        self.database_url = database_url
        self.log_path = log_path
        self.env = {**os.environ, "TASKLINE_MIGRATE_ON_START": "true", **env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, timeout: float = 30.0 * TIME_SCALE) -> None:
        """Start the process and return once ``/health`` answers (or raise with its log);
        ``TASKLINE_TEST_TIME_SCALE`` stretches the default ``timeout`` on a slow machine."""
        command = [
            sys.executable,
            "-m",
            "taskline",
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--log-level",
            "warning",
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start-up:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server did not answer in {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def memory_kib(self) -> tuple[int, int]:
        """The process's resident memory now and at its peak (KiB), from /proc."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in {"VmRSS", "VmHWM"}:
                fields[name] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        """Stop gracefully (SIGTERM), killing it if it does not end within ``timeout``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
