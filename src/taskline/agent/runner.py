"""The built-in agent at work: a folder review run live on a task, through the SDK only.

:func:`review_folder` does what :func:`~taskline.agent.review.review_path` does, one step
at a time, and shows every step on the task:

1. **Plan.** Sections ``Plan``, ``Read`` (one subtask per file) and ``Report`` are added to
   the task; listing the folder is the ``list_files`` tool call.
2. **Read.** Per file: ``read_file`` and, for text, ``search_text`` (TODO/FIXME) tool calls,
   narration streamed as ``message.delta`` a few words at a time, the file's subtask ticked,
   a ``state.patch`` (``/files_done``, ``/findings``, ``/totals``) and a progress update
   whose confidence is the share of files read so far.
3. **Report.** The ``write_report`` tool call renders the Markdown report, which becomes the
   task's result on completion.

**Approvals.** The steps named in ``approve`` (:data:`APPROVABLE_STEPS`: ``list_files``,
``write_report``; the server's setting ``TASKLINE_AGENT_APPROVE``) wait for a person's
approval first (``run.approval``: a request on the task, shown in the inbox and, over AG-UI,
as an interrupt). Approved, the step runs with the arguments as approved (a person may edit
them); rejected, the run fails with the rejection (``ApprovalRejected``), and so does an
approval that expires or is cancelled.

People steer it through the hub. A **pause** is honoured between files (and before the
report): the agent waits, its status ``paused``, until **resume**. A **cancel** stops it
before the next file (a cancel during ``step_delay`` cuts the delay short); the task stays
``cancelled`` (neither failed nor completed) and the agent goes idle. A **message** is
answered in the narration after the current file, from what was found so far, and again
in the report's "Messages" section from the whole review.

The task is assigned to the agent when the run starts, so commands reach it.
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from taskline.agent.analysis import MARKER_PATTERN, Marker, find_markers
from taskline.agent.answers import answer_message, describe_file, summary_sentence
from taskline.agent.files import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    Document,
    FileKind,
    Listing,
    list_files,
    read_document,
)
from taskline.agent.report import SECTION_TITLES, render_report
from taskline.agent.review import FileReview, FolderReview, folder_review, review_document
from taskline.domain.models import MAX_TITLE
from taskline.domain.status import TaskStatus
from taskline.sdk import AsyncClient, Command, EventRejected, HumanMessage, MessageStream, Run

__all__ = [
    "AGENT_KIND",
    "AGENT_NAME",
    "APPROVABLE_STEPS",
    "DEFAULT_AGENT_ID",
    "MAX_REPORT_BYTES",
    "ReviewOutcome",
    "ReviewResult",
    "StepReporter",
    "review_folder",
]

DEFAULT_AGENT_ID = "agent_builtin"
AGENT_NAME = "Built-in reviewer"
AGENT_KIND = "builtin"

#: Largest report sent as the task's result (UTF-8 bytes); longer lists are shortened.
MAX_REPORT_BYTES = 150_000
#: Findings kept per list in the shared state (the report has them all).
STATE_FINDINGS_LIMIT = 100
#: Paths shown in the result of the ``list_files`` tool call (the count is always exact).
TOOL_LIST_LIMIT = 100
#: Words per ``message.delta`` of the narration.
WORDS_PER_DELTA = 3

#: Share of the progress bar for planning, then for reading; the report takes the rest.
_PLAN_SHARE = 0.05
_READ_SHARE = 0.85

#: Called with one line of text per step (the CLI prints them).
StepReporter = Callable[[str], None]


class ReviewOutcome(StrEnum):
    """How a review run ended (a failure raises instead)."""

    COMPLETED = "completed"  #: the report is the task's result
    CANCELLED = "cancelled"  #: a person cancelled the task; it stays cancelled


@dataclass(frozen=True, slots=True)
class ReviewResult:
    """What :func:`review_folder` did.

    ``review`` holds the files reviewed before the run ended (all of them when completed);
    ``files_total`` is how many files the listing found (0 if cancelled before listing);
    ``report`` is the Markdown result (None when cancelled); ``messages`` are the people's
    messages the run received, oldest first.
    """

    outcome: ReviewOutcome
    review: FolderReview
    files_total: int
    report: str | None
    messages: tuple[HumanMessage, ...] = ()


def _subtask_title(path: str) -> str:
    return path if len(path) <= MAX_TITLE else "…" + path[-(MAX_TITLE - 1) :]


def _chunks(text: str, words: int = WORDS_PER_DELTA) -> list[str]:
    """Split ``text`` into pieces of ``words`` words that join back to exactly ``text``."""
    pieces: list[str] = []
    current = ""
    count = 0
    for token in text.split(" "):
        current += token + " "
        count += 1
        if count == words:
            pieces.append(current)
            current, count = "", 0
    if current:
        pieces.append(current)
    if pieces:
        pieces[-1] = pieces[-1][:-1]  # the last split added a space that was not there
    return [p for p in pieces if p]


#: The steps that can be made to wait for a person's approval (``approve``). Only these:
#: they run outside any streamed message, so an AG-UI client sees the run end cleanly there.
APPROVABLE_STEPS = frozenset({"list_files", "write_report"})
_WHY = {
    "list_files": "List the files of the folder to review",
    "write_report": "Write the report, which becomes the task's result",
}


class _FolderRun:
    """One review in progress: the run, the folder, what was found, what people asked."""

    def __init__(
        self,
        client: AsyncClient,
        run: Run,
        root: Path,
        *,
        step_delay: float,
        max_files: int,
        max_bytes: int,
        hidden: bool,
        on_step: StepReporter | None,
        approve: Collection[str] = (),
    ) -> None:
        self.client = client
        self.approve = frozenset(approve)
        self.run = run
        self.root = root
        self.step_delay = step_delay
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.hidden = hidden
        self.on_step = on_step
        self.files: list[FileReview] = []
        self.listing = Listing(root, ())
        self._unanswered: list[HumanMessage] = []
        self._cancel = asyncio.Event()
        self._in_state = {"todo": 0, "fixme": 0, "broken_links": 0, "skipped": 0}

    # --- people -------------------------------------------------------------------------------

    def _on_message(self, message: HumanMessage) -> None:
        self._unanswered.append(message)
        self._note(f"message from {message.author}: {message.content}")

    def _on_command(self, command: Command) -> None:
        if command.command == "cancel":
            self._cancel.set()
        elif command.command in {"pause", "resume"}:
            self._note(f"{command.command} requested")

    def _note(self, line: str) -> None:
        if self.on_step is not None:
            self.on_step(line)

    async def _may_go_on(self) -> bool:
        """Honour pause and cancel: False once cancelled, after waiting out any pause."""
        if self.run.cancelled:
            return False
        if self.run.paused:
            self._note("paused")
            await self._say("Paused. I will go on when the task is resumed.")
            if not await self.run.wait_if_paused():
                return False
            self._note("resumed")
            await self._say("Resumed.")
        return not self.run.cancelled

    async def _rest(self) -> None:
        """Wait ``step_delay`` seconds so people can follow; a cancel cuts it short."""
        if self.step_delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cancel.wait(), self.step_delay)

    # --- narration ----------------------------------------------------------------------------

    async def _stream(self, text: str, message: MessageStream) -> None:
        pause = min(self.step_delay / 20, 0.05)
        for piece in _chunks(text):
            await message.write(piece)
            if pause > 0:
                await asyncio.sleep(pause)

    async def _say(self, text: str) -> None:
        async with self.run.message() as message:
            await self._stream(text, message)

    async def _answer_messages(self) -> None:
        """Answer the messages received since the last answer, from the files read so far."""
        while self._unanswered:
            message = self._unanswered.pop(0)
            so_far = self._review()
            answer = answer_message(message.content, so_far)
            done = f"{len(self.files)} of {len(self.listing.files)} files"
            await self._say(
                f"{message.author} asked: “{message.content}” From the {done} read so far: "
                f"{answer} The report's Messages section will answer from the whole review."
            )

    # --- the review ---------------------------------------------------------------------------

    def _review(self) -> FolderReview:
        return folder_review(
            self.root,
            self.files,
            truncated=self.listing.truncated,
            max_files=self.max_files,
            unlisted_dirs=self.listing.unlisted_dirs,
        )

    def _confidence(self) -> float:
        return self._review().confidence

    async def execute(self) -> ReviewResult:
        run = self.run
        run.on_message(self._on_message)
        run.on_command(self._on_command)
        task = run.task
        if task is not None and task.assigned_agent_id != run.agent_id:
            await self.client.update_task(run.task_id, assigned_agent_id=run.agent_id)
        await self._say(f"I will review the folder {self.root} and report what I find.")
        plan = await self.client.add_section(
            run.task_id, "Plan", ["List the files", "Plan one step per file"]
        )
        await run.progress(0.01, "Listing the files")
        await self._list()
        await run.subtask(plan.subtasks[0].id).done()
        count = len(self.listing.files)
        titles = [_subtask_title(name) for name in self.listing.files]
        read = await self.client.add_section(run.task_id, "Read", titles)
        report = await self.client.add_section(
            run.task_id, "Report", ["Answer messages", "Write the report"]
        )
        await run.state.snapshot(self._initial_state())
        await run.subtask(plan.subtasks[1].id).done()
        await run.progress(_PLAN_SHARE, f"Planned: {count} files to read", confidence=1.0)
        await self._say(self._plan_text())
        for index, (name, subtask) in enumerate(
            zip(self.listing.files, read.subtasks, strict=True)
        ):
            await self._rest()
            if not await self._may_go_on():
                return await self._cancelled()
            await self._read(index, name, subtask.id)
            await self._answer_messages()
        await self._rest()
        if not await self._may_go_on():
            return await self._cancelled()
        await self._answer_messages()
        await run.subtask(report.subtasks[0].id).done()
        text = await self._write_report()
        await run.subtask(report.subtasks[1].id).done()
        review = self._review()
        await run.progress(1.0, "Report written", confidence=review.confidence)
        await self._say(f"Done. {summary_sentence(review)} The report is the task's result.")
        if not await self._may_go_on():
            return await self._cancelled()
        await run.complete(result=text)
        self._note("completed")
        return self.result(ReviewOutcome.COMPLETED, text)

    @contextlib.asynccontextmanager
    async def _approved(self, step: str, args: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run the body with ``args``, after a person approved ``step`` when it needs it (with
        their edits to ``args``); a rejection raises before the body runs."""
        if step not in self.approve:
            yield args
            return
        self._note(f"waiting for a person to approve {step}")
        async with self.run.approval(step, args, reason=_WHY.get(step), risk="low") as decision:
            self._note(f"{step} approved")
            yield dict(decision.arguments) if decision.arguments is not None else args

    async def _list(self) -> None:
        args: dict[str, Any] = {"path": str(self.root), "max_files": self.max_files}
        async with (
            self._approved("list_files", args) as args,
            self.run.tool_call("list_files", args) as call,
        ):
            self.listing = await asyncio.to_thread(
                list_files, self.root, max_files=self.max_files, hidden=self.hidden
            )
            call.result = {
                "count": len(self.listing.files),
                "truncated": self.listing.truncated,
                "files": list(self.listing.files[:TOOL_LIST_LIMIT]),
                "unlisted_dirs": [list(item) for item in self.listing.unlisted_dirs],
            }
        more = " (more exist; only these are reviewed)" if self.listing.truncated else ""
        self._note(f"listed {len(self.listing.files)} files{more}")

    def _plan_text(self) -> str:
        count = len(self.listing.files)
        if count == 0:
            return "The folder has no files to review, so the report will say just that."
        more = (
            f" The folder has more; I stop at {self.max_files}." if self.listing.truncated else ""
        )
        noun = "file" if count == 1 else "files"
        return f"I found {count} {noun}.{more} I will read each one, then write the report."

    def _initial_state(self) -> dict[str, Any]:
        return {
            "folder": str(self.root),
            "files_total": len(self.listing.files),
            "files_done": [],
            "findings": {"todo": [], "fixme": [], "broken_links": [], "skipped": []},
            "totals": self._review().totals(),
        }

    async def _read(self, index: int, name: str, subtask_id: str) -> None:
        run = self.run
        total = len(self.listing.files)
        async with run.message() as message:
            await self._stream(f"Reading {name} ({index + 1} of {total}). ", message)
            async with run.tool_call(
                "read_file", {"path": name}, parent_message_id=message.message_id
            ) as call:
                document = await asyncio.to_thread(
                    read_document, self.root, name, max_bytes=self.max_bytes, hidden=self.hidden
                )
                call.result = {
                    "kind": document.kind.value,
                    "size": document.size,
                    "detail": document.detail,
                }
            markers = await self._search(document, message.message_id)
            review = await asyncio.to_thread(
                review_document, self.root, document, markers=markers, hidden=self.hidden
            )
            self.files.append(review)
            await self._stream(describe_file(review), message)
        await run.subtask(subtask_id).done()
        await run.state.patch(self._patch(review))
        progress = _PLAN_SHARE + _READ_SHARE * (index + 1) / total
        await run.progress(
            progress, f"Read {index + 1} of {total} files", confidence=self._confidence()
        )
        self._note(f"[{index + 1}/{total}] {describe_file(review)}")

    async def _search(self, document: Document, message_id: str) -> list[Marker] | None:
        """The ``search_text`` tool call for TODO/FIXME in a text file (None for other kinds)."""
        if document.kind is not FileKind.TEXT or document.text is None:
            return None
        args = {"path": document.path, "pattern": MARKER_PATTERN}
        async with self.run.tool_call("search_text", args, parent_message_id=message_id) as call:
            markers = find_markers(document.path, document.text)
            call.result = {
                "matches": len(markers),
                "lines": [
                    {"line": m.line, "marker": m.marker, "text": m.text}
                    for m in markers[:STATE_FINDINGS_LIMIT]
                ],
            }
        return list(markers)

    def _add(self, kind: str, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        room = max(0, STATE_FINDINGS_LIMIT - self._in_state[kind])
        kept = items[:room]
        self._in_state[kind] += len(kept)
        return [{"op": "add", "path": f"/findings/{kind}/-", "value": item} for item in kept]

    def _patch(self, review: FileReview) -> list[dict[str, Any]]:
        """The state patch for one more file: done list, findings (capped), new totals."""
        ops: list[dict[str, Any]] = [{"op": "add", "path": "/files_done/-", "value": review.path}]
        for marker in ("TODO", "FIXME"):
            found = [
                {"file": m.path, "line": m.line, "text": m.text}
                for m in review.markers
                if m.marker == marker
            ]
            ops += self._add(marker.lower(), found)
        links = [{"file": b.path, "line": b.line, "target": b.target} for b in review.broken_links]
        ops += self._add("broken_links", links)
        if review.skipped:
            skipped = {"file": review.path, "reason": review.kind.value, "detail": review.detail}
            ops += self._add("skipped", [skipped])
        ops.append({"op": "replace", "path": "/totals", "value": self._review().totals()})
        return ops

    async def _write_report(self) -> str:
        review = self._review()
        args: dict[str, Any] = {"files": len(review.files), "messages": len(self.run.messages)}
        async with (
            self._approved("write_report", args) as args,
            self.run.tool_call("write_report", args) as call,
        ):
            text = render_report(review, self.run.messages, max_bytes=MAX_REPORT_BYTES)
            sections = [t for t in SECTION_TITLES if f"\n## {t}\n" in text]
            call.result = {"bytes": len(text.encode()), "sections": sections}
        self._note("report written")
        return text

    async def _cancelled(self) -> ReviewResult:
        done = len(self.files)
        self._note(f"cancelled after {done} of {len(self.listing.files)} files")
        await self._say(f"Cancelled: I stop here, after {done} of {len(self.listing.files)} files.")
        return self.result(ReviewOutcome.CANCELLED, None)

    def result(self, outcome: ReviewOutcome, report: str | None) -> ReviewResult:
        total = len(self.listing.files)
        return ReviewResult(outcome, self._review(), total, report, tuple(self.run.messages))


async def review_folder(
    client: AsyncClient,
    task_id: str,
    path: str | os.PathLike[str],
    *,
    agent_id: str = DEFAULT_AGENT_ID,
    step_delay: float = 0.0,
    max_files: int = DEFAULT_MAX_FILES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    hidden: bool = False,
    on_step: StepReporter | None = None,
    approve: Collection[str] = (),
) -> ReviewResult:
    """Review the folder at ``path`` as ``agent_id`` working on task ``task_id``.

    See the module docstring for what the task shows. The task must be able to start:
    ``pending``, ``in_progress``, ``paused`` (the run waits for a resume) or ``failed``.

    Args:
        client: an open client; the run uses (and shares) its connection for ``agent_id``.
        step_delay: seconds to wait before each file and before the report, so people can
            watch (the demo uses about 0.6); 0 goes as fast as it can.
        max_files, max_bytes: the bounds of :func:`~taskline.agent.files.list_files` and
            :func:`~taskline.agent.files.read_document`.
        hidden: review hidden files and folders too (skipped by default). Links out of the
            folder are never followed (:mod:`taskline.agent.confine`); which folders may be
            reviewed at all is the caller's decision (the AG-UI gateway's review roots).
        on_step: called with one line per step (listing, each file, pause, resume, message,
            cancel, completion), from the event loop.
        approve: steps (of :data:`APPROVABLE_STEPS`) that wait for a person's approval.

    Returns:
        The outcome, the review (partial when cancelled), the report and the messages.

    Raises:
        FolderError: ``path`` is not a folder that can be listed; the task is failed with
            the reason first.
        EventRejected: the task cannot start (it is completed or cancelled), or the hub
            refused an event for another reason than a cancel racing the completion.
        TasklineClientError: any other SDK failure (server unreachable, ...); the SDK fails
            the task if it still can.
        asyncio.CancelledError: the coroutine was cancelled (Ctrl-C in the CLI); the task is
            failed as "interrupted" first, unless a person had cancelled it.
        ValueError: ``step_delay`` is negative.
    """
    if step_delay < 0:
        raise ValueError(f"step_delay must be >= 0, got {step_delay}")
    unknown = set(approve) - APPROVABLE_STEPS
    if unknown:
        raise ValueError(
            f"approve: {', '.join(sorted(unknown))} cannot wait for an approval "
            f"(only {', '.join(sorted(APPROVABLE_STEPS))} can)"
        )
    run = client.run(task_id, agent=agent_id, name=AGENT_NAME, kind=AGENT_KIND)
    work: _FolderRun | None = None
    try:
        async with run:
            work = _FolderRun(
                client,
                run,
                Path(path),
                step_delay=step_delay,
                max_files=max_files,
                max_bytes=max_bytes,
                hidden=hidden,
                on_step=on_step,
                approve=approve,
            )
            try:
                return await work.execute()
            except asyncio.CancelledError:
                # The agent itself was stopped (Ctrl-C): say so rather than "CancelledError".
                if not run.cancelled:
                    await run.fail("interrupted: the agent was stopped before it finished")
                raise
    except EventRejected:
        # A cancel that arrives just before completion gets the completing batch refused.
        if work is None or (await client.get_task(task_id)).status != TaskStatus.CANCELLED:
            raise
        return work.result(ReviewOutcome.CANCELLED, None)
