"""A ``redis-server`` of a test's own on a spare port, which the test stops and starts again
(the system's Redis is shared by others and never stopped)."""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.databases import unavailable
from tests.support.server import free_port
from tests.support.waiting import wait_until

__all__ = ["PrivateRedis", "private_redis"]


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
