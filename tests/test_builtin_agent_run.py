"""The built-in agent against a real server: its report, its log, and people steering it."""

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from taskline.agent.files import SAMPLE_DOCS
from taskline.agent.runner import DEFAULT_AGENT_ID, ReviewOutcome, ReviewResult, review_folder
from taskline.cli.main import taskline
from taskline.domain.events import WebSocketMessage
from taskline.domain.models import Task
from taskline.sdk import AsyncClient
from tests.support.server import LiveServer
from tests.support.waiting import TIME_SCALE, async_holds_for, async_wait_until
from tests.test_builtin_agent_review import prepare_folder

SCALE = TIME_SCALE
WAIT = 15.0 * SCALE
#: Seconds the agent waits before each file in the steering tests.
STEP = 0.2 * SCALE


@pytest.fixture
async def sdk(sqlite_server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(sqlite_server.url) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it is true, failing after ``WAIT`` seconds."""
    await async_wait_until(check, message=what, timeout=WAIT)


async def log_of(sdk: AsyncClient, task_id: str) -> list[WebSocketMessage]:
    return (await sdk.events(task_id, limit=10_000)).events


def narration(events: list[WebSocketMessage]) -> str:
    return "".join(str(e.data["delta"]) for e in events if e.event_type == "message.delta")


def agent_offline(sdk: AsyncClient) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await sdk.get_agent(DEFAULT_AGENT_ID)).status == "offline"

    return check


def many_files(root: Path, count: int) -> Path:
    """A folder of ``count`` small Markdown files, one TODO each."""
    root.mkdir(exist_ok=True)
    for n in range(count):
        (root / f"doc{n:02}.md").write_text(f"# Doc {n}\n\nTODO: finish doc {n}\n")
    return root


def files_done(task: Task) -> int:
    read = next(s for s in task.sections if s.title == "Read")
    return sum(s.done for s in read.subtasks)


async def test_a_prepared_folder_gives_the_expected_report_and_log(
    sdk: AsyncClient, tmp_path: Path
) -> None:
    """Counts and findings land in the result; the log shows tools, narration, state, plan."""
    root = prepare_folder(tmp_path / "docs")
    os.mkfifo(root / "pipe")  # never opened: reading it would block
    task = await sdk.create_task("Review the docs")

    result = await review_folder(sdk, task.id, root)

    assert result.outcome is ReviewOutcome.COMPLETED
    done = await sdk.get_task(task.id)
    assert done.status == "completed"
    assert done.progress == 1.0
    assert done.confidence == pytest.approx(6 / 8)
    assert done.assigned_agent_id == DEFAULT_AGENT_ID
    report = done.result
    assert isinstance(report, str) and report == result.report
    assert "- Files: 8 (3 text, 1 empty, 2 binary, 2 unreadable, 0 too large)" in report
    assert f"- Words: {result.review.words}" in report
    assert "- Markdown headings: 4" in report
    assert "- TODO: 2, FIXME: 1" in report
    assert "- Broken relative links: 3" in report
    assert "- Confidence: 0.75 (6 of 8 files could be read)" in report
    assert "| `README.md` | 7 | TODO | `TODO: write the install steps` |" in report
    assert "| `docs/guide.md` | 14 | FIXME |" in report
    assert "| `README.md` | 8 | `docs/missing.md#part` |" in report
    assert "| `dangling.md` | unreadable | broken symbolic link |" in report
    assert "| `pipe` | unreadable | not a regular file (a FIFO) |" in report
    assert "| `img/logo.png` | binary | contains NUL bytes |" in report
    assert "1. `README.md` — " in report

    assert [s.title for s in done.sections] == ["Plan", "Read", "Report"]
    assert all(sub.done for section in done.sections for sub in section.subtasks)
    read = [sub.title for sub in done.sections[1].subtasks]
    assert read == [f.path for f in result.review.files]
    assert len(read) == 8

    events = await log_of(sdk, task.id)
    counts = Counter(e.event_type.value for e in events)
    tools = Counter(e.data["name"] for e in events if e.event_type == "tool_call.start")
    assert tools == {"list_files": 1, "read_file": 8, "search_text": 3, "write_report": 1}
    ends = [e for e in events if e.event_type == "tool_call.end"]
    assert len(ends) == 13 and not any(e.data.get("error") for e in ends)
    assert counts["message.start"] == counts["message.end"] >= 8
    assert counts["message.delta"] > counts["message.start"]
    assert "Reading README.md (1 of 8)." in narration(events)
    assert counts["state.snapshot"] == 1
    assert counts["state.patch"] == 8
    assert counts["subtask_updated"] == 2 + 8 + 2
    progress = [float(e.data["progress"]) for e in events if e.event_type == "progress_update"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert [e.event_type.value for e in events if e.event_type.value.startswith("task_")][-1] == (
        "task_completed"
    )
    # Everything but REST changes and the hub's presence events came from the one run.
    from_run = [e for e in events if e.run_id is not None]
    assert {e.agent_id for e in from_run} == {DEFAULT_AGENT_ID}
    assert len({e.run_id for e in from_run}) == 1
    assert {e.event_type.value for e in events if e.run_id is None} <= {
        "task_created",
        "task_updated",
        "agent_status_change",
    }

    state = (await sdk.state(task.id)).state
    assert isinstance(state, dict)
    assert state["files_total"] == 8
    assert state["files_done"] == read
    findings = state["findings"]
    assert isinstance(findings, dict)
    assert [item["line"] for item in findings["todo"]] == [7, 9]
    assert len(findings["broken_links"]) == 3
    assert len(findings["skipped"]) == 4
    assert state["totals"]["confidence"] == 0.75
    await eventually(agent_offline(sdk), "the agent to go offline")


async def test_an_empty_folder_completes_with_a_report_saying_so(
    sdk: AsyncClient, tmp_path: Path
) -> None:
    """No files: nothing to read, full confidence, a short report."""
    empty = tmp_path / "empty"
    empty.mkdir()
    task = await sdk.create_task("Review nothing")
    result = await review_folder(sdk, task.id, empty)
    assert result.outcome is ReviewOutcome.COMPLETED
    done = await sdk.get_task(task.id)
    assert done.status == "completed"
    assert (done.progress, done.confidence) == (1.0, 1.0)
    assert isinstance(done.result, str)
    assert "The folder has no files to review" in done.result
    assert "## Files" not in done.result
    assert [len(s.subtasks) for s in done.sections] == [2, 0, 2]


async def test_a_missing_folder_fails_the_task_with_the_reason(
    sdk: AsyncClient, tmp_path: Path
) -> None:
    """A path that is not a folder fails the task (not a crash of the hub) and raises."""
    task = await sdk.create_task("Review a ghost")
    with pytest.raises(ValueError, match="no such folder"):
        await review_folder(sdk, task.id, tmp_path / "ghost")
    failed = await sdk.get_task(task.id)
    assert failed.status == "failed"
    assert "no such folder" in str(failed.result)


async def start_review(sdk: AsyncClient, task_id: str, root: Path) -> asyncio.Task[ReviewResult]:
    """Start the agent in the background and wait until it has read its first file."""
    running = asyncio.create_task(review_folder(sdk, task_id, root, step_delay=STEP))

    async def first_file_read() -> bool:
        if running.done():
            running.result()  # surface a crash
            raise AssertionError("the review ended before it could be steered")
        task = await sdk.get_task(task_id)
        return any(s.title == "Read" for s in task.sections) and files_done(task) >= 1

    await eventually(first_file_read, "the first file to be read")
    return running


async def test_pause_stops_the_agent_and_resume_lets_it_finish(
    sdk: AsyncClient, sqlite_server: LiveServer, tmp_path: Path
) -> None:
    """While paused, progress and the files done stay put; after resume the task completes."""
    task = await sdk.create_task("Review slowly")
    running = await start_review(sdk, task.id, many_files(tmp_path / "docs", 8))
    async with httpx.AsyncClient(base_url=sqlite_server.url) as http:
        assert (await http.post(f"/api/v1/tasks/{task.id}/pause")).json()["delivered"] is True

        async def agent_paused() -> bool:
            return (await sdk.get_agent(DEFAULT_AGENT_ID)).status == "paused"

        await eventually(agent_paused, "the agent to pause")
        before = await sdk.get_task(task.id)

        async def stays_put() -> bool:
            now = await sdk.get_task(task.id)
            return (now.status, now.progress, files_done(now)) == (
                "paused",
                before.progress,
                files_done(before),
            ) and not running.done()

        # That nothing moves while paused can only be watched for a while: several files'
        # worth of step delays, checked all along (a move fails at once). Being paused was
        # observed first, so a slow machine can only make this check weaker, never fail it.
        await async_holds_for(
            stays_put, 6 * STEP, message="the paused task keeps its progress and files done"
        )
        after = await sdk.get_task(task.id)
        assert after.status == "paused"
        assert (after.progress, files_done(after)) == (before.progress, files_done(before))
        assert files_done(after) < 8 and not running.done()

        await http.post(f"/api/v1/tasks/{task.id}/resume")
        result = await asyncio.wait_for(running, WAIT)
    assert result.outcome is ReviewOutcome.COMPLETED
    done = await sdk.get_task(task.id)
    assert (done.status, done.progress, files_done(done)) == ("completed", 1.0, 8)
    assert "- TODO: 8, FIXME: 0" in str(done.result)
    text = narration(await log_of(sdk, task.id))
    assert "Paused. I will go on when the task is resumed." in text
    assert "Resumed." in text


async def test_cancel_stops_the_agent_and_the_task_stays_cancelled(
    sdk: AsyncClient, sqlite_server: LiveServer, tmp_path: Path
) -> None:
    """A cancel stops the agent before the next file; nothing completes or fails the task."""
    task = await sdk.create_task("Review, then stop")
    running = await start_review(sdk, task.id, many_files(tmp_path / "docs", 10))
    async with httpx.AsyncClient(base_url=sqlite_server.url) as http:
        assert (await http.post(f"/api/v1/tasks/{task.id}/cancel")).status_code == 200
    result = await asyncio.wait_for(running, WAIT)

    assert result.outcome is ReviewOutcome.CANCELLED
    assert result.report is None
    assert result.files_total == 10 and len(result.review.files) < 10
    cancelled = await sdk.get_task(task.id)
    assert cancelled.status == "cancelled"
    assert cancelled.result is None
    assert files_done(cancelled) == len(result.review.files)
    events = await log_of(sdk, task.id)
    kinds = [e.event_type.value for e in events]
    assert "task_completed" not in kinds and "task_failed" not in kinds
    after_cancel = kinds[kinds.index("task_cancelled") :]
    # Stored after the cancel: at most the file being read when it came, and the previous
    # file's last events if they were still on their way.
    assert after_cancel.count("state.patch") <= 2
    assert "write_report" not in {e.data.get("name") for e in events}
    assert "Cancelled: I stop here" in narration(events)
    await eventually(agent_offline(sdk), "the agent to go offline")


async def test_a_human_message_is_answered_live_and_in_the_report(
    sdk: AsyncClient, sqlite_server: LiveServer, tmp_path: Path
) -> None:
    """A message posted while the agent runs is answered in its narration and in the report."""
    root = many_files(tmp_path / "docs", 11)
    (root / "links.md").write_text("See [nowhere](missing.md).\n")
    task = await sdk.create_task("Review and talk")
    running = await start_review(sdk, task.id, root)
    async with httpx.AsyncClient(base_url=sqlite_server.url) as http:
        posted = await http.post(
            f"/api/v1/tasks/{task.id}/messages",
            json={"author": "ana", "content": "Which links are broken?"},
        )
        assert posted.status_code == 201 and posted.json()["delivered"] is True
    result = await asyncio.wait_for(running, WAIT)

    assert result.outcome is ReviewOutcome.COMPLETED
    assert [(m.author, m.content) for m in result.messages] == [("ana", "Which links are broken?")]
    report = str((await sdk.get_task(task.id)).result)
    assert report.index("## Messages") > report.index("## Skipped files")
    assert "**ana** wrote:\n\n> Which links are broken?\n\n" in report
    assert "1 broken relative link: `missing.md` in `links.md` line 1." in report
    text = narration(await log_of(sdk, task.id))
    assert "ana asked: “Which links are broken?” From the " in text


def test_the_cli_reviews_the_sample_folder(sqlite_server: LiveServer) -> None:
    """`taskline agent run --sample` completes a new task and prints its steps."""
    result = CliRunner().invoke(
        taskline, ["--url", sqlite_server.url, "agent", "run", "--sample", "--delay", "0"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("task task_") and "sample_docs as agent_builtin" in lines[0]
    assert "listed 4 files" in lines
    assert "[2/4] assets/logo.png was skipped: binary (contains NUL bytes)." in lines
    assert "confidence 1.00" in lines[-1] and "completed" in lines[-1]
    task_id = lines[0].split()[1].rstrip(":")
    with httpx.Client(base_url=sqlite_server.url) as http:
        task = http.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed"
    assert task["title"] == "Review the sample documents"
    assert "- TODO: 1, FIXME: 1" in task["result"]
    assert "| `README.md` | 8 | `CHANGELOG.md` |" in task["result"]
    assert SAMPLE_DOCS.name in task["result"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["/no/such/folder"], 2, "error: /no/such/folder: no such folder"),
        (["--sample", "--task", "task_unknown1"], 4, "error: task 'task_unknown1' does not exist"),
        ([], 2, "give a PATH or --sample"),
        (["--sample", "--agent-id", "Bob"], 2, "expected 'agent_' followed by lowercase"),
    ],
)
def test_the_cli_reports_bad_input_in_one_line(
    sqlite_server: LiveServer, args: list[str], code: int, message: str
) -> None:
    """A missing folder, an unknown task or no folder at all: one error line and an exit code."""
    result = CliRunner().invoke(taskline, ["--url", sqlite_server.url, "agent", "run", *args])
    assert result.exit_code == code
    assert message in result.output
