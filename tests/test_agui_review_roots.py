"""POST /api/v1/agui: the built-in agent reviews only folders under its review roots.

Real servers (``review_roots``/``review_hidden`` settings), real HTTP: a refused run ends with
``RUN_ERROR`` (code ``folder_refused``) naming the roots as configured and leaves nothing in
the task's log; links out of a reviewed folder and hidden files never reach the log.
"""

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskline.service.agui_gateway import task_id_for_thread
from taskline.settings import Settings
from tests.support.agui import post_run, run_input
from tests.support.server import LiveServer

SECRET = "SECRET-HEADING-7f3a"
HIDDEN = "HIDDEN-NOTE-51c2"

Serve = Callable[..., LiveServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start servers with given settings (each on its own SQLite file); all stopped after."""
    servers: list[LiveServer] = []

    def start(**settings: Any) -> LiveServer:
        url = f"sqlite+aiosqlite:///{tmp_path / f'taskline{len(servers)}.db'}"
        server = LiveServer(Settings(database_url=url, **settings))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``root`` (to configure) with files, hidden ones, and links out to ``outside``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(f"# {SECRET}\n\nTODO: {SECRET} leaked\n")
    root = tmp_path / "root"
    (root / "guide").mkdir(parents=True)
    (root / "README.md").write_text("# Read me\n\nTODO: write more\n")
    (root / "guide" / "setup.md").write_text("# Setup\n\nSee [it](../../outside/secret.md)\n")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "out.md").symlink_to(outside / "secret.md")
    (root / ".env").write_text(f"TODO: {HIDDEN}\n")
    (root / ".private").mkdir()
    (root / ".private" / "notes.md").write_text(f"# {HIDDEN}\n")
    return tmp_path


def log_text(server: LiveServer, task_id: str) -> str:
    """Everything the task shows: its events and the task itself (result included)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        events = http.get(f"/api/v1/tasks/{task_id}/events", params={"limit": 10_000}).json()
        task = http.get(f"/api/v1/tasks/{task_id}").json()
    return json.dumps([events, task])


async def review(server: LiveServer, text: str) -> tuple[list[dict[str, Any]], str]:
    """Run ``text`` on a new thread: the frames, and the task's log as text."""
    thread = str(uuid.uuid4())
    frames = await post_run(server, run_input(thread, text))
    return frames, log_text(server, task_id_for_thread(thread))


@pytest.mark.parametrize(
    "text",
    ["/etc", "review /etc", "~", "~/.ssh", "review ~/.ssh", "../..", "review ../..",
     "out", "review out", "out/", "{root}/out", "{root}/../outside", "review {root}/.."],
)  # fmt: skip
async def test_folders_out_of_the_roots_are_refused(serve: Serve, tree: Path, text: str) -> None:
    """Out of the roots (absolute, home, up, a link out of the root): RUN_ERROR naming the
    root as configured, nothing read, nothing in the log but the task's creation."""
    root = str(tree / "root")
    server = serve(review_roots=(root,))
    text = text.format(root=root)
    frames, log = await review(server, text)
    assert [f["type"] for f in frames] == ["RUN_STARTED", "RUN_ERROR"]
    assert frames[1]["code"] == "folder_refused"
    # exactly: the path as asked, the root as configured; nothing about what is there
    asked = text.split()[-1]
    assert frames[1]["message"] == (
        f"{asked!r} is not a folder the built-in agent may review: it reviews only {root} "
        f"and the folders under it (a relative path is taken relative to {root})"
    )
    assert SECRET not in log and "task_started" not in log and "list_files" not in log


async def test_the_roots_are_named_as_configured(
    serve: Serve, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TASKLINE_REVIEW_ROOTS as a path list, with ``~``: the refusal names them as written."""
    monkeypatch.setenv("HOME", str(tree))
    monkeypatch.setenv("TASKLINE_REVIEW_ROOTS", f"~/root{os.pathsep}~/root/guide")
    server = serve()
    frames, _ = await review(server, "/etc")
    assert frames[1]["message"].endswith(
        "it reviews only ~/root, ~/root/guide and the folders under them "
        "(a relative path is taken relative to ~/root)"
    )
    frames, log = await review(server, "~/root/guide")
    assert frames[-1]["type"] == "RUN_FINISHED", frames[-1]
    assert "setup.md" in frames[-1]["result"] and SECRET not in log


async def test_links_out_and_hidden_files_never_reach_the_log(serve: Serve, tree: Path) -> None:
    """Reviewing the root: the links out are not listed or followed, hidden files and folders
    are skipped, a Markdown link out is not looked up; the rest is reviewed."""
    server = serve(review_roots=(str(tree / "root"),))
    frames, log = await review(server, f"review {tree / 'root'}")
    assert frames[-1]["type"] == "RUN_FINISHED", frames[-1]
    report = frames[-1]["result"]
    assert "README.md" in report and "guide/setup.md" in report
    assert SECRET not in log and "out.md" not in log and "secret.md" not in log
    assert HIDDEN not in log and ".env" not in log and ".private" not in log
    # a hidden folder is refused as such
    frames, log = await review(server, "review .private")
    assert frames[1]["code"] == "folder_refused" and "hidden" in frames[1]["message"]
    assert HIDDEN not in log


async def test_hidden_files_are_read_with_review_hidden(serve: Serve, tree: Path) -> None:
    server = serve(review_roots=(str(tree / "root"),), review_hidden=True)
    frames, log = await review(server, "review .")
    assert frames[-1]["type"] == "RUN_FINISHED", frames[-1]
    assert ".env" in frames[-1]["result"] and ".private/notes.md" in frames[-1]["result"]
    assert HIDDEN in log
    assert SECRET not in log  # links out stay out
    frames, log = await review(server, ".private")
    assert frames[-1]["type"] == "RUN_FINISHED" and HIDDEN in log


async def test_relative_requests_are_taken_from_the_first_root(serve: Serve, tree: Path) -> None:
    """``guide`` and ``root/guide`` (starting with the root's name) both name root/guide."""
    server = serve(review_roots=(str(tree / "root"),))
    for text in ("review guide", "root/guide"):
        frames, log = await review(server, text)
        assert frames[-1]["type"] == "RUN_FINISHED", frames[-1]
        assert "setup.md" in frames[-1]["result"] and "README.md" not in frames[-1]["result"]
        assert SECRET not in log


async def test_the_default_root_is_the_sample_folder(serve: Serve) -> None:
    """No roots configured: the sample folder (by its name, or ``.``) is reviewed, and
    anything else is refused naming it."""
    server = serve()
    for text in ("review sample_docs", "."):
        frames, _ = await review(server, text)
        assert frames[-1]["type"] == "RUN_FINISHED", frames[-1]
        assert "guide/setup.md" in frames[-1]["result"]
    frames, log = await review(server, "/etc")
    assert frames[1]["code"] == "folder_refused" and "task_started" not in log
    assert "it reviews only sample_docs and the folders under it" in frames[1]["message"]
    # a question is still answered as one, not refused
    frames, _ = await review(server, "What did you find?")
    assert frames[-1]["code"] == "no_agent" and "sample_docs" in frames[-1]["message"]
