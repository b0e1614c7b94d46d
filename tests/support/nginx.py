"""A private nginx (Debian's) in front of several real Taskline servers.

The configuration is ``docs/deploy-nginx.conf`` with its placeholders filled: a free port,
the upstream servers, and a prefix directory of its own for the pid file, the logs and the
temporary files. The system's nginx (its configuration, service and port) is never used.
"""

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.databases import unavailable
from tests.support.server import free_port

__all__ = ["TEMPLATE", "Nginx", "nginx_binary", "nginx_in_front", "render"]

#: The documented configuration the tests run.
TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "deploy-nginx.conf"


def nginx_binary() -> str:
    """The nginx executable; fails (or skips, see ``unavailable``) when it is not installed."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        unavailable("nginx", "not installed (make nginx installs Debian's, as root)")
    assert found is not None
    return found


def render(template: str, *, listen: str, servers: Sequence[str], prefix: Path) -> str:
    """``template`` with its ``{{...}}`` placeholders filled; every placeholder must be."""
    upstream = "\n".join(
        f"        server {server} max_fails=2 fail_timeout=5s;" for server in servers
    )
    values = {
        "pid_file": str(prefix / "nginx.pid"),
        "error_log": str(prefix / "error.log"),
        "access_log": str(prefix / "access.log"),
        "temp_dir": str(prefix / "temp"),
        "listen": listen,
        "servers": upstream,
    }
    text = template
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise ValueError(f"unfilled placeholder in {TEMPLATE}: {text[text.index('{{') :][:40]}")
    return text


class Nginx:
    """nginx on a free loopback port proxying to ``servers`` (``host:port`` each)."""

    def __init__(self, servers: Sequence[str]) -> None:
        self.binary = nginx_binary()
        self.port = free_port()
        self.servers = list(servers)
        # its own directory, readable by nginx's unprivileged workers (pytest's are not)
        self.prefix = Path(tempfile.mkdtemp(prefix="taskline-nginx-"))
        self.prefix.chmod(0o755)
        (self.prefix / "temp").mkdir(mode=0o755)
        self.config = self.prefix / "nginx.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 20.0) -> None:
        """Write the configuration, start nginx in the foreground, return once it proxies."""
        text = render(
            TEMPLATE.read_text(),
            listen=f"127.0.0.1:{self.port}",
            servers=self.servers,
            prefix=self.prefix,
        )
        self.config.write_text(text)
        command = [self.binary, "-p", str(self.prefix), "-c", str(self.config)]
        command += ["-e", str(self.prefix / "error.log"), "-g", "daemon off;"]
        with (self.prefix / "stderr.log").open("wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                stderr = (self.prefix / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"nginx exited at start-up:\n{stderr}\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nginx did not proxy /health in {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop nginx (SIGQUIT: graceful; killed after ``timeout``) and remove its directory."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        shutil.rmtree(self.prefix, ignore_errors=True)


@contextmanager
def nginx_in_front(ports: Sequence[int]) -> Iterator[Nginx]:
    """A started :class:`Nginx` proxying to the servers on these local ports, stopped after."""
    nginx = Nginx([f"127.0.0.1:{port}" for port in ports])
    nginx.start()
    try:
        yield nginx
    finally:
        nginx.stop()
