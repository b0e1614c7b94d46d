"""The AG-UI run gateway behind ``POST /api/v1/agui`` (what AG-UI's ``HttpAgent`` calls).

One request is one run: :meth:`AguiGateway.prepare` validates the ``RunAgentInput`` and finds
the thread's task, then :meth:`AguiGateway.run` yields the run's AG-UI events:
``RUN_STARTED`` first (echoing ``threadId``/``runId``, with ``protocolVersion``), the run's
events, then exactly one terminal event (``RUN_FINISHED`` or ``RUN_ERROR``), and nothing after.

**Thread → task.** ``threadId`` is the task id when it is a valid Taskline id of an existing
task, or of a task to create (``task_…``-style ids are kept as they are). Any other
``threadId`` (the official client sends UUIDs) maps to the derived id
``task_<first 32 hex digits of sha256(threadId)>``: the same thread always reaches the same
task, with nothing stored. A task is created only for a run that is served (the built-in
agent's review), titled from the last user message: a run nobody serves leaves no task behind.

**Threads are multi-run.** Each request is a new run on the thread's task. A run starting on
a task whose last run ended (completed or failed) reopens it: its ``task_started`` records
``reopened_from`` (:func:`taskline.domain.status.check_run_start`), attributed to whoever
starts the run. The task's runs and their outcomes are listed by
``GET /api/v1/tasks/{id}/runs`` (:mod:`taskline.domain.runs`).

**Who serves the run**, in this order:

1. *An agent connected for the task* (its assigned agent, else an agent whose current task it
   is, connected to the hub at ``/ws/agents/{id}``; the built-in agent does not count): it gets
   a ``run`` command carrying the ``RunAgentInput`` (docs/agent-protocol.md). The gateway then
   streams the task's events of that run (``run_id`` = the ``runId``; AG-UI events ingested
   with ``?format=agui`` are taken whatever run id they carry: an AG-UI agent names its own
   runs) until the run's terminal event. If the agent disconnects first, the stream ends
   with ``RUN_ERROR`` (and the run is failed or logged, below).
2. *The built-in agent*, when the last user message names a folder (the whole message, or its
   last word): :func:`~taskline.agent.runner.review_folder` runs as a background task,
   in-process through the application layer (:class:`~taskline.service.local_agent.LocalClient`:
   no HTTP to itself), its events stamped with ``run_id`` = the ``runId``. The review keeps
   going if the client leaves. Only folders under the *review roots* are reviewed
   (:mod:`taskline.agent.confine`: resolved, ``~`` expanded, a relative path taken relative
   to the first root; hidden files only with ``review_hidden``; links out of the folder are
   not followed). A last word (or one-word message) naming anything else (``/etc``, ``~``,
   ``../..``, a link out of a root) ends the run with ``RUN_ERROR`` (code
   ``folder_refused``) naming the roots as configured, before the agent starts (nothing is
   read, nothing is added to the task's log).
3. *The built-in agent answering a question* about its last report (the task's result): one
   text message, then ``RUN_FINISHED`` with the report as ``result``. Nothing is stored.
4. Otherwise: ``RUN_ERROR`` (code ``no_agent``) saying why.

**A RUN_ERROR the gateway answers itself is logged** (no agent, a refused folder, an agent
gone or silent, a gateway failure), so viewers of the task see it: if the run had started on
the task (an event of it is in the log), the task is failed with the reason (``task_failed``
of the run); otherwise, on an existing task, an ``error`` event of the run is logged
(``data``: ``message``, ``code``, ``unserved: true``; source ``agui-gateway``) and the task's
status is left as it was. The AG-UI watch stream shows that event as a run of its own
(``RUN_STARTED`` then ``RUN_ERROR``), and the runs list as an ``unserved`` run. A thread with
no task gets nothing logged (there is nothing to view).

**One run at a time per thread** (per server process): a request for a thread whose run is
still going is refused with 409 before streaming; two requests racing past that check are
told apart when streaming starts, and the later one ends at once with ``RUN_ERROR`` (code
``run_in_progress``). The first run is not disturbed.

Edge cases: every wait is bounded (``start_timeout`` for an agent's first event,
``idle_timeout`` between events); a run that ends without a terminal event in the log (the
built-in agent crashed, or the task was completed/cancelled elsewhere) ends with
``RUN_ERROR``. ``RUN_STARTED`` events from the log are not repeated (the gateway already sent
one), and the terminal ``RUN_FINISHED`` always echoes the request's ``threadId``/``runId``.
"""

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
)
from pydantic import ValidationError

from taskline.agent.confine import FolderRefused, ReviewRoots, confine
from taskline.agent.files import SAMPLE_DOCS
from taskline.agent.runner import DEFAULT_AGENT_ID, review_folder
from taskline.agui.translate import AGUI_KEY, TERMINAL_TYPES, to_agui
from taskline.domain.access import Action, require
from taskline.domain.actors import Actor, Role
from taskline.domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TasklineError,
)
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.ids import ID_PATTERN, new_id
from taskline.domain.models import MAX_TITLE, Task, TaskCreate
from taskline.domain.status import TaskStatus
from taskline.realtime import ConnectionManager, Following
from taskline.realtime.agents import AgentHub
from taskline.sdk import Run
from taskline.service.agents import AgentService
from taskline.service.events import EventService
from taskline.service.local_agent import LocalClient
from taskline.service.tasks import TaskService

__all__ = ["AguiGateway", "PreparedRun", "task_id_for_thread"]

logger = logging.getLogger("taskline.agui")

E = WebSocketEventType
#: Who the gateway's own changes are made by (a task created for a thread, a run failed).
_ACTOR = Actor.system("agui-gateway")
_WORD = re.compile(r"[a-z0-9]{3,}")


def task_id_for_thread(thread_id: str) -> str:
    """The task id that serves AG-UI thread ``thread_id`` (see the module docstring)."""
    if ID_PATTERN.match(thread_id):
        return thread_id
    return "task_" + hashlib.sha256(thread_id.encode()).hexdigest()[:32]


def _text(content: Any) -> str:
    """The text of a message's content (a string, or content parts of which text is kept)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(getattr(part, "text", "") or "") for part in content).strip()
    return ""


def _last_user_text(run_input: RunAgentInput) -> str:
    for message in reversed(run_input.messages or []):
        if getattr(message, "role", None) == "user":
            return _text(getattr(message, "content", "")).strip()
    return ""


def _folder(instruction: str, roots: ReviewRoots, *, hidden: bool) -> Path | None:
    """The folder under ``roots`` an instruction names: the whole text, or its last word
    (``review ./docs``), resolved; None when neither is a folder there (a question).

    Raises:
        FolderRefused: the last word (the whole text when it is one word) names a path out
            of the roots, or a hidden one without ``hidden``. A whole text of several words
            is only taken when it names an allowed folder (a question is no refusal).
    """
    words = instruction.split()
    candidates = [(instruction, len(words) <= 1)]
    if len(words) > 1:
        candidates.append((words[-1], True))
    for candidate, decisive in candidates:
        text = candidate.strip().strip("'\"`")
        if not text:
            continue
        try:
            path = confine(text, roots, hidden=hidden)
        except FolderRefused:
            if decisive:
                raise
            continue
        if path is not None and path.is_dir():
            return path
    return None


def _answer(question: str, report: str) -> str:
    """Answer ``question`` from a Markdown report: its lines sharing most words with it."""
    wanted = set(_WORD.findall(question.lower()))
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    scored = sorted(
        ((len(wanted & set(_WORD.findall(line.lower()))), i) for i, line in enumerate(lines)),
        key=lambda item: (-item[0], item[1]),
    )
    best = sorted(i for score, i in scored[:5] if score > 0)
    if not best:
        head = " ".join(lines[:3])
        return f"My last report does not mention that directly. It begins: {head}"
    return "From my last report:\n" + "\n".join(lines[i] for i in best)


@dataclass(frozen=True, slots=True)
class PreparedRun:
    """A validated run request and the task it works on (None: the thread has no task yet)."""

    input: RunAgentInput
    task_id: str
    task: Task | None
    instruction: str


@dataclass(slots=True)
class _Served:
    """What a run has done so far: ``started`` once an event of it was read from the log;
    ``logged`` the last such event (a RUN_ERROR that is not it is the gateway's own)."""

    started: bool = False
    logged: BaseEvent | None = None


class _RunClient(LocalClient):
    """The built-in agent's in-process client, whose runs use a given run id (the AG-UI
    ``runId``)."""

    def __init__(
        self, tasks: TaskService, events: EventService, hub: AgentHub, run_id: str
    ) -> None:
        # the server's own agent, started by a member (START_RUNS) to work for them: it acts
        # with a member's rights on the run's task (which is assigned to no one)
        super().__init__(tasks, events, hub, actor=Actor.agent(DEFAULT_AGENT_ID, Role.MEMBER))
        self._run_id = run_id

    def run(
        self,
        task_id: str,
        *,
        agent: Any,
        name: str | None = None,
        kind: str | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        run = super().run(task_id, agent=agent, name=name, kind=kind, parent_run_id=parent_run_id)
        run.run_id = self._run_id
        return run


Alive = Callable[[], Awaitable[str | None]]


class AguiGateway:
    """Runs AG-UI requests (see the module docstring).

    Args:
        start_timeout: seconds a connected agent gets to publish the run's first event.
        idle_timeout: longest silence between two events of a run before it is given up.
        poll: how often (seconds) a silent run checks that its agent is still there.
        review_roots: the folders the built-in agent may review (paths under them only;
            ``~`` expanded, relative ones from the current directory); empty: the sample
            folder :data:`~taskline.agent.files.SAMPLE_DOCS`.
        review_hidden: let the built-in agent read hidden files and folders.
    """

    def __init__(
        self,
        tasks: TaskService,
        events: EventService,
        agents: AgentService,
        connections: ConnectionManager,
        hub: AgentHub,
        *,
        start_timeout: float = 30.0,
        idle_timeout: float = 300.0,
        poll: float = 0.25,
        review_roots: Sequence[str | os.PathLike[str]] = (),
        review_hidden: bool = False,
    ) -> None:
        self.tasks = tasks
        self.events = events
        self.agents = agents
        self.connections = connections
        self.hub = hub
        self.start_timeout = start_timeout
        self.idle_timeout = idle_timeout
        self.poll = poll
        self.review_roots = ReviewRoots.of(review_roots, default=SAMPLE_DOCS)
        self.review_hidden = review_hidden
        for name, path in zip(self.review_roots.names, self.review_roots.paths, strict=True):
            if not path.is_dir():
                logger.warning("review root %s is not a folder (%s)", name, path)
        self._background: set[asyncio.Task[Any]] = set()
        self._running: dict[str, str] = {}  # task id -> run id of the run streaming now

    async def stop(self) -> None:
        """Stop the built-in agent's reviews still going (their tasks are failed by the SDK's
        run as interrupted)."""
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # --- request ----------------------------------------------------------------------------

    async def prepare(self, raw: bytes, *, actor: Actor) -> PreparedRun:
        """Validate the body and find the thread's task (created later, if the run is served).

        Raises:
            NotAuthenticatedError, ForbiddenError: ``actor`` may not start runs (the built-in
                agent reads the server's disk: members and admins only).
            InvalidInputError: the body is not a ``RunAgentInput`` (names the first bad field).
            ConflictError: the thread has a run in progress.
        """
        require(actor, Action.START_RUNS)
        try:
            run_input = RunAgentInput.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidInputError(f"{path}: {first['msg']}", field=path) from None
        if len(run_input.run_id) > 80 or not run_input.run_id:
            raise InvalidInputError("runId: 1 to 80 characters", field="runId")
        instruction = _last_user_text(run_input)
        task_id = task_id_for_thread(run_input.thread_id)
        busy = self._running.get(task_id)
        if busy is not None:
            raise ConflictError(
                f"thread {run_input.thread_id!r} already has a run in progress ({busy}); "
                f"wait for it to finish, or cancel it (POST /api/v1/tasks/{task_id}/cancel)"
            )
        return PreparedRun(run_input, task_id, await self._existing(task_id), instruction)

    async def _existing(self, task_id: str) -> Task | None:
        try:
            return await self.tasks.get(task_id)
        except NotFoundError:
            return None

    async def _task_for(self, task_id: str, instruction: str) -> Task:
        """The task ``task_id``, created (titled from ``instruction``) if it does not exist.

        Two first runs of one thread at once: the loser of the insert reads the winner's task.
        """
        found = await self._existing(task_id)
        if found is not None:
            return found
        title = " ".join(instruction.split())[:MAX_TITLE] or "AG-UI thread"
        try:
            return await self.tasks.create(
                TaskCreate(title=title, tags=["ag-ui"]),
                task_id=task_id,
                actor=_ACTOR,
                source="agui",
            )
        except ConflictError:
            return await self.tasks.get(task_id)

    # --- run --------------------------------------------------------------------------------

    async def run(self, prepared: PreparedRun) -> AsyncIterator[BaseEvent]:
        """The run's AG-UI events, ``RUN_STARTED`` first and one terminal event last."""
        run_input = prepared.input
        yield RunStartedEvent(
            thread_id=run_input.thread_id,
            run_id=run_input.run_id,
            protocol_version=PROTOCOL_VERSION,
        )
        task_id = prepared.task_id
        busy = self._running.setdefault(task_id, run_input.run_id)
        if busy != run_input.run_id:
            yield RunErrorEvent(
                message=f"thread {run_input.thread_id!r} already has a run in progress ({busy})",
                code="run_in_progress",
            )
            return
        served = _Served()
        try:
            terminal: BaseEvent | None = None
            try:
                async for event in self._serve(prepared, served):
                    if event.type.value == "RUN_FINISHED":
                        # echo the request's ids (an agent's own RUN_FINISHED may carry others)
                        event = event.model_copy(
                            update={"thread_id": run_input.thread_id, "run_id": run_input.run_id}
                        )
                    if event.type.value in TERMINAL_TYPES:
                        terminal = event
                        break
                    yield event
                else:
                    terminal = RunErrorEvent(
                        message="the run ended without a result", code="incomplete"
                    )
            except Exception as exc:  # the stream has started: report, never raise
                logger.exception("AG-UI run %s failed", run_input.run_id)
                terminal = RunErrorEvent(message=f"the gateway failed: {exc}", code="gateway_error")
            if isinstance(terminal, RunErrorEvent) and terminal is not served.logged:
                await self._record_error(prepared, served, terminal)
            yield terminal
        finally:
            if self._running.get(task_id) == run_input.run_id:
                del self._running[task_id]

    async def _serve(self, prepared: PreparedRun, served: _Served) -> AsyncIterator[BaseEvent]:
        task = prepared.task
        agent_id = None if task is None else await self._connected_agent(task.id)
        if agent_id is not None:
            async for event in self._external(prepared, agent_id, served):
                yield event
            return
        try:
            folder = _folder(prepared.instruction, self.review_roots, hidden=self.review_hidden)
        except FolderRefused as refused:
            yield RunErrorEvent(message=str(refused), code="folder_refused")
            return
        if folder is not None:
            async for event in self._review(prepared, folder, served):
                yield event
            return
        current = await self._existing(prepared.task_id)
        report = current.result if current is not None else None
        if current is not None and prepared.instruction and isinstance(report, str) and report:
            state = (await self.events.state(current.id)).document
            for event in self._reply(prepared, state, report):
                yield event
            return
        reason = (
            "no question to answer: the last user message is empty"
            if not prepared.instruction
            else f"{prepared.instruction[:200]!r} is not a folder under the review roots "
            f"({', '.join(self.review_roots.names)}), and there is no report yet to answer "
            "questions about"
        )
        yield RunErrorEvent(
            message=f"No agent is connected for task {prepared.task_id}, and the built-in "
            "agent cannot "
            f"serve this run: {reason}. Send a folder path to review, or connect an agent.",
            code="no_agent",
        )

    async def _connected_agent(self, task_id: str) -> str | None:
        """A connected agent (not the built-in one) working on the task, if any."""
        await self.tasks.get(task_id)  # 404 for an unknown task
        candidates = await self.agents.agents_for(task_id)
        for agent_id in candidates:
            if agent_id and agent_id != DEFAULT_AGENT_ID and self.hub.is_connected(agent_id):
                return agent_id
        return None

    # --- the three ways of serving a run ----------------------------------------------------

    async def _external(
        self, prepared: PreparedRun, agent_id: str, served: _Served
    ) -> AsyncIterator[BaseEvent]:
        run_input = prepared.input
        task_id = prepared.task_id
        since = await self._head(task_id)
        frame = {
            "type": "command",
            "id": new_id("cmd"),
            "command": "run",
            "task_id": task_id,
            "run": run_input.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

        async def alive() -> str | None:
            if self.hub.is_connected(agent_id):
                return None
            return f"agent {agent_id} disconnected during AG-UI run {run_input.run_id}"

        async with self._follow(task_id, since) as following:
            await self.hub.reply(agent_id, frame)
            events = self._events(following, run_input.run_id, alive, self.start_timeout, served)
            async for event in events:
                yield event

    async def _review(
        self, prepared: PreparedRun, folder: Path, served: _Served
    ) -> AsyncIterator[BaseEvent]:
        run_input = prepared.input
        task_id = (await self._task_for(prepared.task_id, prepared.instruction)).id
        since = await self._head(task_id)
        job: asyncio.Task[Any] | None = None

        async def work() -> None:
            client = _RunClient(self.tasks, self.events, self.hub, run_input.run_id)
            async with client:
                await review_folder(client, task_id, folder, hidden=self.review_hidden)

        async def alive() -> str | None:
            if job is None or not job.done():
                return None
            if job.cancelled():
                return "the built-in agent was stopped"
            error = job.exception()
            if error is not None:
                return f"the built-in agent failed: {error}"
            return "the built-in agent ended without finishing the run"

        async with self._follow(task_id, since) as following:
            job = asyncio.create_task(work(), name=f"agui-review-{run_input.run_id}")
            self._background.add(job)
            job.add_done_callback(self._background.discard)
            events = self._events(following, run_input.run_id, alive, self.start_timeout, served)
            async for event in events:
                yield event

    def _reply(self, prepared: PreparedRun, state: Any, report: str) -> list[BaseEvent]:
        message_id = f"msg_{prepared.input.run_id}"[:80]
        events: list[BaseEvent] = []
        if state is not None:
            events.append(StateSnapshotEvent(snapshot=state))
        events += [
            TextMessageStartEvent(message_id=message_id, role="assistant"),
            TextMessageContentEvent(
                message_id=message_id, delta=_answer(prepared.instruction, report)
            ),
            TextMessageEndEvent(message_id=message_id),
            RunFinishedEvent(
                thread_id=prepared.input.thread_id, run_id=prepared.input.run_id, result=report
            ),
        ]
        return events

    # --- following the log ------------------------------------------------------------------

    async def _head(self, task_id: str) -> int:
        return (await self.events.head(task_id)).last_seq

    def _follow(self, task_id: str, since: int) -> AbstractAsyncContextManager[Following]:
        """Follow the task's events after ``since`` (replayed, then live)."""
        return self.connections.follow(task_id, since=since, user_agent="agui-gateway")

    async def _events(
        self,
        following: Following,
        run_id: str,
        alive: Alive,
        first_timeout: float,
        served: _Served,
    ) -> AsyncIterator[BaseEvent]:
        """Translate the run's events from ``following`` until its terminal event (bounded
        waits); note in ``served`` what came from the log."""
        loop = asyncio.get_running_loop()
        started = False
        last = loop.time()
        while True:
            try:
                item = await following.receive(timeout=self.poll)  # a waiting reader is alive
            except StopAsyncIteration:
                yield RunErrorEvent(message="the event stream closed", code="closed")
                return
            if item is None:
                reason = await alive()
                if reason is not None:
                    # what arrived meanwhile first: the terminal event may be there
                    for message, _ in following.drain():
                        for event in self._of_run(message, run_id):
                            served.started, served.logged = True, event
                            yield event
                            if event.type.value in TERMINAL_TYPES:
                                return
                    yield RunErrorEvent(message=reason, code="agent_gone")
                    return
                limit = self.idle_timeout if started else first_timeout
                if loop.time() - last > limit:
                    what = "published nothing" if not started else "went silent"
                    yield RunErrorEvent(
                        message=f"the agent {what} for {limit:g} s; the run is given up",
                        code="timeout",
                    )
                    return
                continue
            for event in self._of_run(item.message, run_id):
                started = True
                served.started, served.logged = True, event
                last = loop.time()
                yield event
                if event.type.value in TERMINAL_TYPES:
                    return

    def _of_run(self, message: WebSocketMessage | None, run_id: str) -> list[BaseEvent]:
        """The AG-UI events of ``message`` if it is an event of the run (else none)."""
        if message is None or message.seq is None:
            return []
        ingested = isinstance(message.data.get(AGUI_KEY), dict)
        if message.run_id != run_id and not ingested:
            return []
        return [e for e in to_agui(message) if e.type.value != "RUN_STARTED"]

    async def _record_error(
        self, prepared: PreparedRun, served: _Served, error: RunErrorEvent
    ) -> None:
        """Log a RUN_ERROR the gateway answered (see the module docstring): the run's task
        failed if the run had started, else an ``error`` event of the run on an existing task.
        A failure to log is itself only logged (the client still gets its RUN_ERROR)."""
        run_id = prepared.input.run_id
        task = await self._existing(prepared.task_id)
        if task is None:
            return
        if served.started:
            await self._fail(task.id, run_id, error.message)
            return
        data: dict[str, Any] = {"message": error.message, "code": error.code, "unserved": True}
        if task.status in (TaskStatus.IN_PROGRESS, TaskStatus.PAUSED):
            data["unserved"] = False  # another run is open: an error inside it, not a run
        event = EventIn(event_type=E.ERROR, data=data, run_id=run_id)
        try:
            await self.events.publish(task.id, [event], actor=_ACTOR, source="agui-gateway")
        except TasklineError:
            logger.warning("could not log run %s's error on task %s", run_id, task.id)

    async def _fail(self, task_id: str, run_id: str, reason: str) -> None:
        """Mark the task failed with ``reason`` (starting it first if it is still pending)."""
        status = (await self.tasks.get(task_id)).status
        if status not in {TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.PAUSED}:
            return
        events = [EventIn(event_type=E.TASK_FAILED, data={"error": reason}, run_id=run_id)]
        if status == TaskStatus.PENDING:
            events.insert(0, EventIn(event_type=E.TASK_STARTED, run_id=run_id))
        try:
            await self.events.publish(task_id, events, actor=_ACTOR, source="agui-gateway")
        except TasklineError:
            logger.warning("could not mark task %s failed: %s", task_id, reason)
