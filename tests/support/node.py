"""Node.js test tools (the official AG-UI client, the MCP Inspector), each installed from its
own lockfile with ``npm ci``."""

import shutil
import subprocess
from pathlib import Path

from tests.support.databases import unavailable

__all__ = ["locked_node"]


def locked_node(folder: Path, installed: Path, *, timeout: float = 600) -> str:
    """The ``node`` executable, after ``npm ci`` in ``folder`` unless ``installed`` (a path the
    install makes) is already there. Without node/npm, or when the registry cannot be reached,
    the test is skipped with the reason (a failure under ``TASKLINE_REQUIRE_SERVICES=1``)."""
    node_path, npm_path = shutil.which("node"), shutil.which("npm")
    if node_path is None or npm_path is None:
        unavailable("Node.js/npm", "node or npm is not on PATH")
    assert node_path is not None and npm_path is not None
    if not installed.exists():
        done = subprocess.run(
            [npm_path, "ci", "--no-audit", "--no-fund"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            unavailable("npm registry", done.stderr[-500:])
    return node_path
