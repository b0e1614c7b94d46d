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
   is, connected to the hub at ``/ws/agents/{id}`` of this process or, with Redis, of another
   one; the built-in agent does not count): it gets a ``run`` command carrying the
   ``RunAgentInput`` (docs/agent-protocol.md; through the agent relay when its connection is
   elsewhere, its events coming back through the log). The gateway then
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

**One run at a time per thread**: a request for a thread whose run is still going is
refused with 409 before streaming; two requests racing past that check are told apart when
streaming starts, and the later one ends at once with ``RUN_ERROR`` (code
``run_in_progress``). The first run is not disturbed. With a ``run_lock``
(:class:`~taskline.bus.run_lock.RunLock`, Redis) this holds across processes: the same 409
and ``RUN_ERROR`` on any process, and a crashed process's runs free their threads within the
lock's TTL. When Redis does not answer, the gateway keeps to this process's own lock and logs
a warning (availability over strictness: runs go on; two processes could then run one thread
at once until Redis is back).

Edge cases: every wait is bounded (``start_timeout`` for an agent's first event,
``idle_timeout`` between events); a run that ends without a terminal event in the log (the
built-in agent crashed, or the task was completed/cancelled elsewhere) ends with
``RUN_ERROR``. ``RUN_STARTED`` events from the log are not repeated (the gateway already sent
one), and the terminal ``RUN_FINISHED`` always echoes the request's ``threadId``/``runId``.
"""

import asyncio
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
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
    StepFinishedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallEndEvent,
)
from pydantic import JsonValue, ValidationError

from taskline.agent.confine import FolderRefused, ReviewRoots, confine
from taskline.agent.files import SAMPLE_DOCS
from taskline.agent.runner import DEFAULT_AGENT_ID, review_folder
from taskline.agui.interrupts import answer_of, interrupted
from taskline.agui.translate import AGUI_KEY, TERMINAL_TYPES, event_json, is_interrupt, to_agui
from taskline.bus.run_lock import RunLock
from taskline.domain.access import Action, require
from taskline.domain.actors import Actor, Role
from taskline.domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TasklineError,
)
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.ids import ID_PATTERN, new_id
from taskline.domain.models import MAX_TITLE, Task, TaskCreate, utc_now
from taskline.domain.requests import Request, RequestAnswer, RequestStatus, resolve
from taskline.domain.status import TaskStatus
from taskline.realtime import ConnectionManager, Following
from taskline.realtime.agents import AgentHub
from taskline.sdk import Run
from taskline.service.agents import AgentService
from taskline.service.events import EventService
from taskline.service.local_agent import LocalClient
from taskline.service.requests import RequestService
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


def _track(open_now: set[tuple[str, str]], event: BaseEvent) -> None:
    """Keep ``open_now`` up to date with the text messages, tool calls and steps ``event``
    starts or ends (what must be closed before a run can finish)."""
    kind = event.type.value
    if kind in ("TEXT_MESSAGE_START", "TEXT_MESSAGE_END"):
        key = ("text", str(getattr(event, "message_id", "")))
    elif kind in ("TOOL_CALL_START", "TOOL_CALL_END"):
        key = ("tool", str(getattr(event, "tool_call_id", "")))
    elif kind in ("STEP_STARTED", "STEP_FINISHED"):
        key = ("step", str(getattr(event, "step_name", "")))
    else:
        return
    if kind.endswith(("_START", "_STARTED")):
        open_now.add(key)
    else:
        open_now.discard(key)


def _closer(kind: str, key: str) -> BaseEvent:
    if kind == "text":
        return TextMessageEndEvent(message_id=key)
    if kind == "tool":
        return ToolCallEndEvent(tool_call_id=key)
    return StepFinishedEvent(step_name=key)


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
    actor: Actor


@dataclass(slots=True)
class _Served:
    """What a run has done so far: ``started`` once an event of it was read from the log;
    ``logged`` the last such event (a RUN_ERROR that is not it is the gateway's own)."""

    started: bool = False
    logged: BaseEvent | None = None
    ingested: bool = False  #: the agent speaks AG-UI (ingested events): it ends runs itself
    open: set[tuple[str, str]] = field(default_factory=set)  #: (kind, id) started, not ended


class _Refused(Exception):
    """A run input the gateway refuses once streaming (a RUN_ERROR with ``code``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class _RunClient(LocalClient):
    """The built-in agent's in-process client, whose runs use a given run id (the AG-UI
    ``runId``)."""

    def __init__(
        self,
        tasks: TaskService,
        events: EventService,
        hub: AgentHub,
        run_id: str,
        *,
        requests: RequestService | None = None,
    ) -> None:
        # the server's own agent, started by a member (START_RUNS) to work for them: it acts
        # with a member's rights on the run's task (which is assigned to no one)
        actor = Actor.agent(DEFAULT_AGENT_ID, Role.MEMBER)
        super().__init__(tasks, events, hub, actor=actor, requests=requests)
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
        requests: the requests service (AG-UI interrupts and their resume); None: runs
            cannot be interrupted.
        approve: the built-in agent's steps that need a person's approval first (its tool
            names, e.g. ``write_report``; the setting ``TASKLINE_AGENT_APPROVE``).
        run_lock: one run per thread across processes (None: this process's own lock).
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
        requests: RequestService | None = None,
        approve: Sequence[str] = (),
        run_lock: RunLock | None = None,
    ) -> None:
        self.tasks = tasks
        self.run_lock = run_lock
        self.events = events
        self.agents = agents
        self.connections = connections
        self.hub = hub
        self.start_timeout = start_timeout
        self.idle_timeout = idle_timeout
        self.poll = poll
        self.review_roots = ReviewRoots.of(review_roots, default=SAMPLE_DOCS)
        self.review_hidden = review_hidden
        self.requests = requests
        self.approve = frozenset(approve)
        for name, path in zip(self.review_roots.names, self.review_roots.paths, strict=True):
            if not path.is_dir():
                logger.warning("review root %s is not a folder (%s)", name, path)
        self._background: set[asyncio.Task[Any]] = set()
        self._running: dict[str, str] = {}  # task id -> run id of the run streaming now
        self._reviews: dict[str, asyncio.Task[Any]] = {}  # task id -> the built-in agent's job

    async def stop(self) -> None:
        """Stop the built-in agent's reviews still going (their tasks are failed by the SDK's
        run as interrupted)."""
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.run_lock is not None:
            await self.run_lock.close()

    # --- run lock: this process's, and Redis's when there is one ------------------------------

    async def _holder(self, task_id: str) -> str | None:
        """The run in progress on the thread here or (with a run lock) on any process."""
        busy = self._running.get(task_id)
        if busy is not None or self.run_lock is None:
            return busy
        try:
            return await self.run_lock.holder(task_id)
        except StorageError as exc:
            logger.warning("AG-UI run lock unavailable, using this process's only: %s", exc)
            return None

    async def _take(self, task_id: str, run_id: str) -> str:
        """Take the thread for ``run_id``; return the run holding it (``run_id``: taken)."""
        busy = self._running.setdefault(task_id, run_id)
        if busy != run_id or self.run_lock is None:
            return busy
        try:
            busy = await self.run_lock.acquire(task_id, run_id)
        except StorageError as exc:
            logger.warning("AG-UI run lock unavailable, using this process's only: %s", exc)
            return run_id
        if busy != run_id:
            del self._running[task_id]
        return busy

    async def _keep(self, task_id: str, run_id: str) -> None:
        """Extend the run's lock in Redis until cancelled (Redis errors are logged)."""
        assert self.run_lock is not None
        while True:
            await asyncio.sleep(self.run_lock.refresh_interval)
            try:
                holder = await self.run_lock.acquire(task_id, run_id)
            except StorageError as exc:
                logger.warning("AG-UI run %s: its lock could not be refreshed: %s", run_id, exc)
                continue
            if holder != run_id:
                logger.warning("AG-UI run %s: run %s took its thread's lock", run_id, holder)

    async def _free(self, task_id: str, run_id: str) -> None:
        if self._running.get(task_id) == run_id:
            del self._running[task_id]
        if self.run_lock is not None:
            try:
                await self.run_lock.release(task_id, run_id)
            except StorageError as exc:  # it expires within the lock's TTL
                logger.warning("AG-UI run %s: its lock could not be released: %s", run_id, exc)

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
        busy = await self._holder(task_id)
        if busy is not None:
            raise ConflictError(
                f"thread {run_input.thread_id!r} already has a run in progress ({busy}); "
                f"wait for it to finish, or cancel it (POST /api/v1/tasks/{task_id}/cancel)"
            )
        task = await self._existing(task_id)
        return PreparedRun(run_input, task_id, task, instruction, actor)

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
        busy = await self._take(task_id, run_input.run_id)
        if busy != run_input.run_id:
            yield RunErrorEvent(
                message=f"thread {run_input.thread_id!r} already has a run in progress ({busy})",
                code="run_in_progress",
            )
            return
        served = _Served()
        keeper = (
            asyncio.create_task(self._keep(task_id, run_input.run_id))
            if self.run_lock is not None
            else None
        )
        try:
            terminal: BaseEvent | None = None
            logged = False  # the terminal event came from the log (nothing to record)
            try:
                since, resumed = await self._resume(prepared)
                async for event in self._serve(prepared, served, since, resumed):
                    from_log = event is served.logged
                    if event.type.value == "RUN_FINISHED":
                        # echo the request's ids (an agent's own RUN_FINISHED may carry others)
                        event = event.model_copy(
                            update={"thread_id": run_input.thread_id, "run_id": run_input.run_id}
                        )
                    if event.type.value in TERMINAL_TYPES:
                        terminal, logged = event, from_log
                        break
                    yield event
                else:
                    terminal = RunErrorEvent(
                        message="the run ended without a result", code="incomplete"
                    )
            except _Refused as refused:
                terminal = RunErrorEvent(message=str(refused), code=refused.code)
            except Exception as exc:  # the stream has started: report, never raise
                logger.exception("AG-UI run %s failed", run_input.run_id)
                terminal = RunErrorEvent(message=f"the gateway failed: {exc}", code="gateway_error")
            if isinstance(terminal, RunErrorEvent) and not logged:
                await self._record_error(prepared, served, terminal)
            elif is_interrupt(terminal) and not logged:
                await self._log_agui(prepared, terminal)
            yield terminal
        finally:
            if keeper is not None:
                keeper.cancel()
            await self._free(task_id, run_input.run_id)

    async def _serve(
        self, prepared: PreparedRun, served: _Served, since: int | None, resumed: set[str]
    ) -> AsyncIterator[BaseEvent]:
        task = prepared.task
        agent_id = None if task is None else await self._connected_agent(task.id)
        run_ids = {prepared.input.run_id} | resumed
        if agent_id is not None:
            async for event in self._external(prepared, agent_id, served, since, run_ids):
                yield event
            return
        if resumed:
            async for event in self._continue(prepared, served, since, run_ids):
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
            if (
                agent_id
                and agent_id != DEFAULT_AGENT_ID
                and await self.hub.is_connected_anywhere(agent_id)
            ):
                return agent_id
        return None

    # --- resuming an interrupted run --------------------------------------------------------

    async def _resume(self, prepared: PreparedRun) -> tuple[int | None, set[str]]:
        """Answer the requests the input's ``resume`` entries name (AG-UI interrupts); return
        the log's head before the answers and the runs they resume (empty without resume).

        Every entry is checked before anything is answered. A thread with open requests
        takes only a resume that answers every one of them (AG-UI 1.0).

        Raises:
            _Refused: an entry names no open request of this thread, the payload does not fit
                it (schema, choices, an approval's shape), or some open request is left
                unanswered (codes ``unknown_interrupt``, ``invalid_resume``,
                ``interrupt_pending``, ``interrupt_expired``).
        """
        entries = list(prepared.input.resume or [])
        requests = self.requests
        if requests is None or prepared.task is None:
            if entries:
                raise _Refused("this thread has no interrupts to resume", "unknown_interrupt")
            return None, set()
        task_id = prepared.task_id
        open_now = await requests.list(_ACTOR, status=[RequestStatus.OPEN], task_id=task_id)
        named = {entry.interrupt_id for entry in entries}
        left = [r.id for r in open_now if r.id not in named]
        if left:
            raise _Refused(
                f"thread {prepared.input.thread_id!r} is waiting for answers to "
                f"{', '.join(left)}: send a resume entry for each (AG-UI interrupts)",
                "interrupt_pending",
            )
        if not entries:
            return None, set()
        now = utc_now()
        plan: list[tuple[Request, RequestAnswer | None]] = []
        for entry in entries:
            try:
                request = await requests.get(_ACTOR, entry.interrupt_id)
            except NotFoundError:
                request = None
            if request is None or request.task_id != task_id:
                raise _Refused(
                    f"interrupt {entry.interrupt_id!r} is not one of this thread's",
                    "unknown_interrupt",
                )
            if request.status == RequestStatus.EXPIRED or request.due(now):
                raise _Refused(f"interrupt {request.id!r} expired unanswered", "interrupt_expired")
            try:
                reply = answer_of(request, entry)
                if reply is not None and request.status == RequestStatus.OPEN:
                    resolve(request, reply, by=str(prepared.actor), now=now)  # checks it
            except InvalidInputError as exc:
                raise _Refused(str(exc), "invalid_resume") from None
            plan.append((request, reply))
        since = await self._head(task_id)
        resumed = {r.run_id for r, _ in plan if r.run_id}
        await self._log_agui(
            prepared,
            RunStartedEvent(
                thread_id=task_id,
                run_id=prepared.input.run_id,
                protocol_version=PROTOCOL_VERSION,
            ),
            resumes=[r.id for r, _ in plan],
            resumed_run=min(resumed) if resumed else None,
        )
        for request, reply in plan:
            if request.status != RequestStatus.OPEN:
                continue  # answered already: a replayed resume is safe
            try:
                if reply is None:
                    await requests.cancel(
                        prepared.actor, request.id, "cancelled by the AG-UI client"
                    )
                else:
                    await requests.answer(prepared.actor, request.id, reply)
            except ConflictError:
                logger.info("request %s was closed meanwhile", request.id)
        return since, resumed

    async def _log_agui(self, prepared: PreparedRun, event: BaseEvent, **extra: JsonValue) -> None:
        """Log an AG-UI event the gateway sent (an interrupt, a resumed run's start) as a
        ``custom`` ``agui:<TYPE>`` event of the run, so watchers and the runs list see it."""
        value = json.loads(event_json(event))
        value.pop("timestamp", None)
        if "threadId" in value:
            value["threadId"] = prepared.task_id  # as the task's other AG-UI events have it
        data: dict[str, Any] = {"name": f"agui:{event.type.value}", "value": value}
        data.update({k: v for k, v in extra.items() if v is not None})
        logged = EventIn(event_type=E.CUSTOM, data=data, run_id=prepared.input.run_id)
        try:
            await self.events.publish(
                prepared.task_id, [logged], actor=_ACTOR, source="agui-gateway"
            )
        except TasklineError:
            logger.warning("could not log run %s's %s", prepared.input.run_id, event.type.value)

    # --- the three ways of serving a run ----------------------------------------------------

    async def _external(
        self,
        prepared: PreparedRun,
        agent_id: str,
        served: _Served,
        since: int | None,
        run_ids: set[str],
    ) -> AsyncIterator[BaseEvent]:
        run_input = prepared.input
        task_id = prepared.task_id
        if since is None:
            since = await self._head(task_id)
        frame = {
            "type": "command",
            "id": new_id("cmd"),
            "command": "run",
            "task_id": task_id,
            "run": run_input.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

        async def alive() -> str | None:
            if await self.hub.is_connected_anywhere(agent_id):
                return None
            return f"agent {agent_id} disconnected during AG-UI run {run_input.run_id}"

        async with self._follow(task_id, since) as following:
            # the agent may hold its connection to another process: the relay takes it there,
            # and its events come back through the log like every other process's
            await self.hub.reply_anywhere(agent_id, frame)
            events = self._events(following, run_ids, alive, self.start_timeout, served)
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
            client = _RunClient(
                self.tasks, self.events, self.hub, run_input.run_id, requests=self.requests
            )
            async with client:
                await review_folder(
                    client, task_id, folder, hidden=self.review_hidden, approve=self.approve
                )

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
            self._reviews[task_id] = job
            job.add_done_callback(lambda done: self._forget(task_id, done))
            run_ids = {run_input.run_id}
            events = self._events(following, run_ids, alive, self.start_timeout, served)
            async for event in events:
                yield event

    def _forget(self, task_id: str, job: "asyncio.Task[Any]") -> None:
        if self._reviews.get(task_id) is job:
            del self._reviews[task_id]

    async def _continue(
        self, prepared: PreparedRun, served: _Served, since: int | None, run_ids: set[str]
    ) -> AsyncIterator[BaseEvent]:
        """Stream the rest of an interrupted run of the built-in agent, whose review (still
        going in the background) got its answers from the resume entries."""
        task_id = prepared.task_id
        job = self._reviews.get(task_id)
        if job is None or job.done():
            yield RunErrorEvent(
                message=f"nobody is working on task {task_id} any more (the agent that asked "
                "has stopped, e.g. the server restarted); start a new run",
                code="no_agent",
            )
            return

        async def alive() -> str | None:
            if not job.done():
                return None
            return "the built-in agent stopped before finishing the run"

        async with self._follow(task_id, since or 0) as following:
            events = self._events(following, run_ids, alive, self.start_timeout, served)
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
        run_ids: set[str],
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
                        for event in await self._of_run(message, run_ids, served):
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
            for event in await self._of_run(item.message, run_ids, served):
                started = True
                last = loop.time()
                yield event
                if event.type.value in TERMINAL_TYPES:
                    return

    async def _of_run(
        self, message: WebSocketMessage | None, run_ids: set[str], served: _Served
    ) -> list[BaseEvent]:
        """The AG-UI events of ``message`` if it is an event of the run (else none), noted in
        ``served``. A request opened by the run (an agent that does not speak AG-UI itself)
        ends it with an interrupt: whatever is open closed, the state, then ``RUN_FINISHED``
        whose outcome lists the run's open requests."""
        if message is None or message.seq is None:
            return []
        ingested = isinstance(message.data.get(AGUI_KEY), dict)
        served.ingested = served.ingested or ingested
        if message.event_type == E.REQUEST_OPENED and not served.ingested:
            if message.data.get("run_id") in run_ids and message.task_id:
                return await self._interrupt(message.task_id, run_ids, served)
            return []
        if message.run_id not in run_ids and not ingested:
            return []
        events = [e for e in to_agui(message) if e.type.value != "RUN_STARTED"]
        for event in events:
            served.started, served.logged = True, event
            _track(served.open, event)
        return events

    async def _interrupt(self, task_id: str, run_ids: set[str], served: _Served) -> list[BaseEvent]:
        requests = self.requests
        assert requests is not None  # a request was opened: the service exists
        waiting = [
            r
            for r in await requests.list(_ACTOR, status=[RequestStatus.OPEN], task_id=task_id)
            if r.run_id in run_ids
        ]
        if not waiting:
            return []  # answered already (by a person, elsewhere): the run goes on
        events: list[BaseEvent] = [_closer(kind, key) for kind, key in sorted(served.open)]
        served.open.clear()
        state = (await self.events.state(task_id)).document
        events.append(StateSnapshotEvent(snapshot=state if state is not None else {}))
        events.append(interrupted(task_id, next(iter(run_ids)), waiting))
        served.started = True
        return events

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
