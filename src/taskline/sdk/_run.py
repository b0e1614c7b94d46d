"""A run: one agent working on one task, reported live as events.

::

    async with client.run(task_id, agent="agent_reviewer") as run:
        await run.progress(0.1, "Reading the folder")
        async with run.tool_call("list_files", {"path": "docs"}) as call:
            call.result = sorted(os.listdir("docs"))
        async with run.message() as text:
            await text.write("Found 3 documents. ")
        await run.state.snapshot({"files_done": 0})
        await run.subtask(subtask_id).done()
    # leaving the block completed the task and set the agent idle

Lifecycle (:class:`RunPhase`): ``new → running → closed``; a run is used once. Every
reporting method only queues the event (see :class:`DeliveryOptions`) and returns its id;
:meth:`Run.flush` and leaving the block wait for the server's acknowledgement.
"""

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from taskline.domain.events import WebSocketEventType
from taskline.domain.ids import new_id
from taskline.domain.models import Agent, Task
from taskline.domain.status import TERMINAL_STATUSES, AgentStatus, TaskStatus
from taskline.sdk._agent import AgentLink
from taskline.sdk._config import CLIENT_DEFAULT, ClientDefault
from taskline.sdk._errors import (
    ApprovalRejected,
    RequestNotAnswered,
    RunStateError,
    TasklineClientError,
)
from taskline.sdk._events import build_event
from taskline.sdk._http import jsonable
from taskline.sdk._models import Command, Decision, HumanMessage

if TYPE_CHECKING:
    from taskline.sdk._async_client import AsyncClient

__all__ = [
    "ApprovalGate",
    "CommandCallback",
    "MessageCallback",
    "MessageStream",
    "Run",
    "RunPhase",
    "RunState",
    "Step",
    "SubtaskRef",
    "ToolCall",
]

logger = logging.getLogger("taskline.sdk")

E = WebSocketEventType

#: A callback for people's messages or commands; a coroutine function is run as a task.
MessageCallback = Callable[[HumanMessage], Awaitable[None] | None]
CommandCallback = Callable[[Command], Awaitable[None] | None]

#: Seconds that leaving a run waits for still-running async callbacks before cancelling them.
_CALLBACK_GRACE = 5.0


class RunPhase(StrEnum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Run:
    """One agent working on one task; an async context manager (use it once).

    Entering connects the agent (``WS /ws/agents/{id}``; the connection is shared with the
    agent's other runs in the same client), logs ``task_started`` unless the task is already
    ``in_progress`` or ``paused``, and sets the agent ``working``; it waits until the server
    has acknowledged both, so a task that cannot start (finished, say) raises
    :class:`EventRejected` here.

    Leaving without an exception completes the task (unless the code called
    :meth:`complete` or :meth:`fail`, or a person cancelled it) and sets the agent ``idle``;
    a task that is ``paused`` at that moment is resumed first (a paused task cannot complete).
    Leaving with an exception (including an interruption: ``CancelledError``,
    ``KeyboardInterrupt``) logs ``task_failed`` with the error text (unless the task was
    already finished or cancelled), sets the agent ``error`` and re-raises; a problem while
    reporting that is attached to the exception as a note rather than hiding it. Either way it
    waits up to ``flush_timeout`` for every event to be acknowledged, then releases the agent
    connection (closing it if no other run or :class:`AgentConnection` uses it; the hub then
    logs the agent ``offline`` on its current task).

    Leaving without an exception sets the agent ``idle`` only if no other run of the same
    agent in this client is still going on.

    People steer the run through the hub: :attr:`cancelled`, :attr:`paused`,
    :meth:`wait_if_paused`, :meth:`on_message`, :meth:`on_command` and :attr:`messages`. The
    hub sends a task's commands to the agent the task is assigned to, else to the agent whose
    current task it is (the run makes it so by reporting ``working``): a run by another agent
    than the assigned one does not receive them.

    Attributes:
        task_id, agent_id: what this run is about.
        run_id: ``run_…``, stamped on every event of this run.
        task: the task as it was when the run started (None before).
    """

    def __init__(
        self,
        client: "AsyncClient",
        task_id: str,
        agent: "str | Agent",
        *,
        name: str | None = None,
        kind: str | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.agent_id = agent.id if isinstance(agent, Agent) else agent
        self.run_id = new_id("run")
        self.parent_run_id = parent_run_id
        self.task: Task | None = None
        self.phase = RunPhase.NEW
        self.messages: list[HumanMessage] = []  #: people's messages received, oldest first
        self.state = RunState(self)  #: the task's shared state document
        self._client = client
        self._name = name or (agent.name if isinstance(agent, Agent) else None)
        self._kind = kind or (agent.kind if isinstance(agent, Agent) else None)
        self._link: AgentLink | None = None
        self._task_status: TaskStatus = TaskStatus.PENDING
        self._agent_status: str | None = None  # the last status this run reported
        self._outcome: str | None = None  # "completed" / "failed" by the code
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self._message_callbacks: list[MessageCallback] = []
        self._command_callbacks: list[CommandCallback] = []
        self._callback_tasks: set[asyncio.Future[Any]] = set()

    def __repr__(self) -> str:
        return f"<Run {self.run_id} task={self.task_id} agent={self.agent_id} {self.phase.value}>"

    @property
    def connections(self) -> int:
        """How many times the agent's connection was established so far (1 + reconnects)."""
        return self._link.connections if self._link is not None else 0

    @property
    def pending(self) -> int:
        """Events queued on the agent's connection and not yet acknowledged (all its runs)."""
        return self._link.pending if self._link is not None else 0

    # --- control by people --------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled (a ``cancel`` command, or cancelled before start).

        Check it between steps and stop early; leaving the block then only sets the agent
        idle (a cancelled task is not completed)."""
        return self._task_status is TaskStatus.CANCELLED

    @property
    def paused(self) -> bool:
        """True while the task is paused (a ``pause`` command not yet followed by ``resume``)."""
        return self._task_status is TaskStatus.PAUSED

    async def wait_if_paused(self, timeout: float | None = None) -> bool:
        """Wait while the task is paused; return True to go on, False if it was cancelled.

        While waiting, the agent's status is ``paused`` (and ``working`` again after). A
        person may pause for hours, so by default this waits as long as it takes; with
        ``timeout`` it returns after that many seconds even if still paused (returning
        ``not cancelled``, so check :attr:`paused` to tell).
        """
        self._check_running()
        if self.paused:
            await self.status(AgentStatus.PAUSED)
            try:
                async with asyncio.timeout(timeout):
                    await self._unpaused.wait()
            except TimeoutError:
                return not self.cancelled
            if not self.cancelled:
                await self.status(AgentStatus.WORKING)
        return not self.cancelled

    def on_message(self, callback: MessageCallback) -> None:
        """Call ``callback(message)`` for every message a person posts to the task.

        Messages received before the callback was added are passed to it at once, so none
        is missed. Callbacks run in the event loop: keep them short, or make them coroutine
        functions (then each call runs as its own task). An exception in a callback is
        logged (``taskline.sdk`` logger) and does not stop the run.
        """
        self._message_callbacks.append(callback)
        for message in self.messages:
            self._call(callback, message)

    def on_command(self, callback: CommandCallback) -> None:
        """Call ``callback(command)`` for every command about the task (pause, resume,
        cancel, message) from now on; :attr:`paused`/:attr:`cancelled` are already updated
        when it runs. Same rules as :meth:`on_message`."""
        self._command_callbacks.append(callback)

    def _on_command(self, command: Command) -> None:
        if command.command == "pause":
            self._set_task_status(TaskStatus.PAUSED)
        elif command.command == "resume":
            self._set_task_status(TaskStatus.IN_PROGRESS)
        elif command.command == "cancel":
            self._set_task_status(TaskStatus.CANCELLED)
        elif command.command == "message" and command.message is not None:
            self._on_message(command.message)
        for callback in list(self._command_callbacks):
            self._call(callback, command)

    def _on_message(self, message: HumanMessage) -> None:
        self.messages.append(message)
        for callback in list(self._message_callbacks):
            self._call(callback, message)

    def _set_task_status(self, status: TaskStatus) -> None:
        self._task_status = status
        if status is TaskStatus.PAUSED:
            self._unpaused.clear()
        else:
            self._unpaused.set()

    def _call(self, callback: Callable[[Any], Awaitable[None] | None], argument: Any) -> None:
        try:
            outcome = callback(argument)
        except Exception:
            logger.exception("run %s: a callback failed", self.run_id)
            return
        if inspect.isawaitable(outcome):
            self._spawn(outcome)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._callback_tasks.add(task)
        task.add_done_callback(self._callback_done)

    def _callback_done(self, task: "asyncio.Future[Any]") -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("run %s: a callback failed", self.run_id, exc_info=task.exception())

    # --- entering and leaving -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.phase is not RunPhase.NEW:
            raise RunStateError(f"expected a new run, got {self.phase.value} (runs are used once)")
        self.phase = RunPhase.RUNNING
        self._link = await self._client._acquire_agent(self.agent_id, self._name, self._kind)
        try:
            task = await self._client.get_task(self.task_id)
            self.task = task
            # Status commands that waited for us are already reflected in the task's status
            # (the hub applies them at once); messages still need handling.
            self._task_status = TaskStatus(task.status)
            self._set_task_status(self._task_status)
            for command in self._link.claim(self.task_id, self._on_command):
                if command.command == "message" and command.message is not None:
                    self._on_message(command.message)
            self._link.add_reconnect_hook(self._on_reconnect)
            if self._task_status not in {TaskStatus.IN_PROGRESS, TaskStatus.PAUSED}:
                await self._emit(E.TASK_STARTED, {})
                self._task_status = TaskStatus.IN_PROGRESS
            await self.status(AgentStatus.WORKING)
            await self.flush()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.phase is not RunPhase.RUNNING:
            return
        open_task = self._outcome is None and self._task_status not in TERMINAL_STATUSES
        try:
            if exc is None:
                if open_task:
                    await self.complete()
                if self._link is None or self._link.claimed_tasks <= 1:
                    await self.status(AgentStatus.IDLE)  # unless another run goes on working
                await self.flush()
            else:
                if open_task:
                    await self._emit(E.TASK_FAILED, {"error": _error_text(exc)})
                    self._outcome = "failed"
                await self.status(AgentStatus.IDLE if self.cancelled else AgentStatus.ERROR)
                await self.flush()
        except TasklineClientError as problem:
            if exc is None:
                await self._close()
                raise
            exc.add_note(f"taskline: reporting the failure also failed: {problem}")
        except BaseException:
            await self._close()
            raise
        await self._close(note_on=exc)

    async def _close(self, note_on: BaseException | None = None) -> None:
        """Stop routing commands, finish callbacks, release the agent connection."""
        if self.phase is RunPhase.CLOSED:
            return
        self.phase = RunPhase.CLOSED
        self._unpaused.set()
        if self._callback_tasks:
            _, late = await asyncio.wait(set(self._callback_tasks), timeout=_CALLBACK_GRACE)
            for task in late:
                task.cancel()
        link, self._link = self._link, None
        if link is None:
            return
        link.release(self.task_id, self._on_command)
        link.remove_reconnect_hook(self._on_reconnect)
        try:
            await self._client._release_agent(link)
        except TasklineClientError as problem:
            if note_on is None:
                raise
            note_on.add_note(f"taskline: closing the agent connection failed: {problem}")

    # --- reporting ----------------------------------------------------------------------------

    def _check_running(self) -> AgentLink:
        if self.phase is not RunPhase.RUNNING or self._link is None:
            raise RunStateError(f"expected a running run, got {self.phase.value}")
        return self._link

    async def emit(self, event_type: str | WebSocketEventType, data: dict[str, Any]) -> str:
        """Queue any loggable event for the task; return its id (``evt_…``).

        The event carries this run's ``run_id`` and the agent's id. It is checked against
        its type's schema first, so a bad one raises here instead of getting a whole batch
        refused; effects the server alone can judge (a status move the state machine
        refuses, a patch that does not apply) surface as :class:`EventRejected` from the next
        :meth:`flush`.

        Raises:
            InvalidEvent: a connection-message or server-only type, or data that fails the
                schema (the message names the field).
            RunStateError: the run is not running.
            DeliveryTimeoutError: the buffer stayed full for ``flush_timeout`` seconds.
        """
        return await self._emit(event_type, data)

    async def _emit(self, event_type: str | WebSocketEventType, data: dict[str, Any]) -> str:
        link = self._check_running()
        event = build_event(
            event_type,
            data,
            run_id=self.run_id,
            agent_id=self.agent_id,
            parent_run_id=self.parent_run_id,
            max_bytes=link.options.max_batch_bytes - 512,
        )
        await link.publish(self.task_id, event)
        return event.event_id

    async def flush(self, *, timeout: float | ClientDefault | None = CLIENT_DEFAULT) -> None:
        """Wait until every event queued so far is acknowledged by the server.

        ``timeout`` defaults to the client's ``DeliveryOptions.flush_timeout``; ``None`` waits
        as long as it takes.

        Raises:
            EventRejected: a batch of this task's events was refused since the last flush
                (one error per call; nothing of that batch was stored).
            DeliveryTimeoutError: not everything was acknowledged within ``flush_timeout``
                (the events stay queued and are still sent if the connection returns).
            ConnectionReplacedError: another connection took over the agent.
        """
        await self._check_running().flush(self.task_id, timeout=timeout)

    async def progress(
        self, progress: float, message: str | None = None, confidence: float | None = None
    ) -> str:
        """Report progress (0..1), optionally with a line of text and a confidence (0..1)."""
        data: dict[str, Any] = {"progress": progress}
        if message is not None:
            data["message"] = message
        if confidence is not None:
            data["confidence"] = confidence
        return await self._emit(E.PROGRESS_UPDATE, data)

    async def confidence(self, confidence: float) -> str:
        """Report how sure the agent is of its work so far (0..1)."""
        return await self._emit(E.CONFIDENCE_UPDATE, {"confidence": confidence})

    async def status(self, status: str | AgentStatus) -> str:
        """Set the agent's status (``idle``, ``working``, ``paused``, ``error``, ``offline``)."""
        value = status.value if isinstance(status, AgentStatus) else status
        event_id = await self._emit(
            E.AGENT_STATUS_CHANGE, {"agent_id": self.agent_id, "status": value}
        )
        self._agent_status = value
        return event_id

    def _on_reconnect(self) -> None:
        # The hub marks an agent offline when its connection drops and idle when it returns;
        # a run still at work says so again.
        if self.phase is RunPhase.RUNNING and self._agent_status in {
            AgentStatus.WORKING,
            AgentStatus.PAUSED,
        }:
            self._spawn(self.status(self._agent_status))

    def tool_call(
        self, name: str, args: Any = None, *, parent_message_id: str | None = None
    ) -> "ToolCall":
        """A tool call as an async context manager: ``tool_call.start`` on entry,
        ``tool_call.end`` with the result (set ``call.result``) and ``duration_ms`` on exit.

        An exception inside ends the call with ``error`` and propagates.
        """
        return ToolCall(self, name, args, parent_message_id=parent_message_id)

    def message(self, role: str = "assistant") -> "MessageStream":
        """A streamed message as an async context manager: ``message.start``, one
        ``message.delta`` per :meth:`MessageStream.write`, ``message.end``."""
        return MessageStream(self, role)

    def step(self, name: str) -> "Step":
        """A named step as an async context manager (``step.start`` / ``step.end``)."""
        return Step(self, name)

    def subtask(self, subtask_id: str) -> "SubtaskRef":
        """A subtask of this task, to tick off: ``await run.subtask(id).done()``."""
        return SubtaskRef(self, subtask_id)

    # --- asking people

    async def ask(
        self,
        question: str,
        *,
        schema: dict[str, Any] | None = None,
        choices: list[str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Ask a person on the task and wait for the answer; return it (any JSON).

        ``schema``: a JSON Schema the answer must validate against (the server refuses
        others); ``choices``: the answer is one of these strings. ``timeout``: seconds until
        the request expires unanswered (None: it waits for as long as it takes). The task
        needs input meanwhile (``needs_input`` on the board). The request is durable: a lost
        connection, or a restart of the server, only delays the answer.

        Raises:
            RequestNotAnswered: it expired, or was cancelled (by a person, or because the
                task ended).
        """
        self._check_running()
        fields: dict[str, Any] = {"run_id": self.run_id}
        if schema is not None:
            fields["response_schema"] = schema
        if choices is not None:
            fields["choices"] = list(choices)
        if timeout is not None:
            fields["expires_in"] = timeout
        await self.flush()  # the log shows what the agent did before it asked
        request = await self._client.open_request(self.task_id, "question", question, **fields)
        answered = await self._client.wait_request(request.id)
        if answered.status != "answered":
            raise RequestNotAnswered(answered)
        return answered.answer

    def approval(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        reason: str | None = None,
        risk: str = "medium",
        question: str | None = None,
        timeout: float | None = None,
    ) -> "ApprovalGate":
        """Ask a person to approve an action before running it::

            async with run.approval("delete_branch", {"branch": b}, risk="high") as decision:
                delete_branch(**decision.arguments)   # what the person approved (maybe edited)

        Entering waits for the decision; a rejection raises :class:`ApprovalRejected` (with
        the person's comment) before the body runs; an expiry (``timeout`` seconds) or a
        cancellation raises :class:`RequestNotAnswered`.
        """
        return ApprovalGate(
            self,
            name,
            dict(arguments or {}),
            reason=reason,
            risk=risk,
            question=question,
            timeout=timeout,
        )

    async def complete(self, result: Any = None) -> str:
        """Complete the task with ``result`` (any JSON; it becomes the task's ``result``).

        Raises:
            RunStateError: the run already completed or failed the task, or the task was
                cancelled.
        """
        self._finish("completed")
        if self._task_status is TaskStatus.PAUSED:
            await self._emit(E.TASK_RESUMED, {"reason": "the run finished while paused"})
        self._task_status = TaskStatus.COMPLETED
        data = {"result": jsonable(result)} if result is not None else {}
        return await self._emit(E.TASK_COMPLETED, data)

    async def fail(self, error: str | BaseException) -> str:
        """Fail the task with ``error`` (a text, or an exception turned into one).

        Leaving the block afterwards does not complete the task; the agent becomes idle.

        Raises:
            RunStateError: the run already completed or failed the task, or the task was
                cancelled.
        """
        self._finish("failed")
        self._task_status = TaskStatus.FAILED
        text = error if isinstance(error, str) else _error_text(error)
        return await self._emit(E.TASK_FAILED, {"error": text})

    def _finish(self, outcome: str) -> None:
        self._check_running()
        if self._outcome is not None:
            raise RunStateError(f"the run already {self._outcome} the task")
        if self.cancelled:
            raise RunStateError("a person cancelled the task; it can no longer finish otherwise")
        self._outcome = outcome


class ApprovalGate:
    """``async with run.approval(...) as decision``: see :meth:`Run.approval`."""

    def __init__(
        self,
        run: Run,
        name: str,
        arguments: dict[str, Any],
        *,
        reason: str | None,
        risk: str,
        question: str | None,
        timeout: float | None,
    ) -> None:
        self.run = run
        self.action = {"name": name, "arguments": jsonable(arguments), "risk": risk}
        if reason is not None:
            self.action["reason"] = reason
        self.question = question or f"Approve {name}?"
        self.timeout = timeout
        self.decision: Decision | None = None

    async def __aenter__(self) -> Decision:
        run = self.run
        run._check_running()
        fields: dict[str, Any] = {"run_id": run.run_id, "action": self.action}
        if self.timeout is not None:
            fields["expires_in"] = self.timeout
        await run.flush()
        client = run._client
        request = await client.open_request(run.task_id, "approval", self.question, **fields)
        decided = await client.wait_request(request.id)
        if decided.status == "rejected":
            raise ApprovalRejected(decided)
        if decided.status != "approved":
            raise RequestNotAnswered(decided)
        edited = decided.arguments
        self.decision = Decision(
            approved=True,
            arguments=edited if edited is not None else dict(self.action["arguments"]),
            comment=decided.comment,
            request_id=decided.id,
        )
        return self.decision

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class ToolCall:
    """One tool call of a run; see :meth:`Run.tool_call`.

    Attributes:
        tool_call_id: ``call_…``, in both events.
        result: what ``tool_call.end`` reports (set it inside the block; any JSON).
        error: the error text when the block raised.
        duration_ms: wall time of the block, set on exit.
    """

    def __init__(
        self, run: Run, name: str, args: Any, *, parent_message_id: str | None = None
    ) -> None:
        self.tool_call_id = new_id("call")
        self.name = name
        self.args = args
        self.result: Any = None
        self.error: str | None = None
        self.duration_ms: float | None = None
        self._run = run
        self._parent_message_id = parent_message_id
        self._started = 0.0

    def set_result(self, result: Any) -> None:
        """Set :attr:`result` (the same as assigning it)."""
        self.result = result

    async def __aenter__(self) -> Self:
        data: dict[str, Any] = {"tool_call_id": self.tool_call_id, "name": self.name}
        if self.args is not None:
            data["args"] = jsonable(self.args)
        if self._parent_message_id is not None:
            data["parent_message_id"] = self._parent_message_id
        await self._run._emit(E.TOOL_CALL_START, data)
        self._started = time.perf_counter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.duration_ms = round((time.perf_counter() - self._started) * 1000, 3)
        data: dict[str, Any] = {
            "tool_call_id": self.tool_call_id,
            "name": self.name,
            "duration_ms": self.duration_ms,
        }
        if exc is not None:
            self.error = _error_text(exc)
            data["error"] = self.error
        else:
            data["result"] = jsonable(self.result)
        await self._run._emit(E.TOOL_CALL_END, data)


class MessageStream:
    """A message streamed as deltas; see :meth:`Run.message`.

    ``text`` holds everything written so far. Writing an empty string sends nothing. An
    exception inside the block still ends the message (``message.end`` with ``error``).
    """

    def __init__(self, run: Run, role: str) -> None:
        self.message_id = new_id("msg")
        self.role = role
        self.text = ""
        self._run = run

    async def __aenter__(self) -> Self:
        await self._run._emit(E.MESSAGE_START, {"message_id": self.message_id, "role": self.role})
        return self

    async def write(self, text: str) -> None:
        """Send ``text`` as the next ``message.delta``."""
        if text:
            self.text += text
            await self._run._emit(E.MESSAGE_DELTA, {"message_id": self.message_id, "delta": text})

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        data: dict[str, Any] = {"message_id": self.message_id}
        if exc is not None:
            data["error"] = _error_text(exc)
        await self._run._emit(E.MESSAGE_END, data)


class Step:
    """A named step; see :meth:`Run.step`. An exception ends it with ``error``."""

    def __init__(self, run: Run, name: str) -> None:
        self.name = name
        self._run = run

    async def __aenter__(self) -> Self:
        await self._run._emit(E.STEP_START, {"name": self.name})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        data: dict[str, Any] = {"name": self.name}
        if exc is not None:
            data["error"] = _error_text(exc)
        await self._run._emit(E.STEP_END, data)


class RunState:
    """The task's shared state document, changed through the run (``run.state``).

    The server keeps the document and a ``version`` (one more per snapshot or patch); a
    patch that does not apply to the current document is refused (:class:`EventRejected`
    from the next flush) and changes nothing.
    """

    def __init__(self, run: Run) -> None:
        self._run = run

    async def snapshot(self, document: Any) -> str:
        """Replace the whole document (any JSON)."""
        return await self._run._emit(E.STATE_SNAPSHOT, {"snapshot": jsonable(document)})

    async def patch(self, operations: list[dict[str, Any]]) -> str:
        """Apply RFC 6902 operations, e.g. ``[{"op": "add", "path": "/done/-", "value": 3}]``
        (an empty list is a valid no-op: it is logged and bumps the state's version).

        Raises:
            InvalidEvent: a malformed operation (``add`` without ``value``, say).
        """
        return await self._run._emit(E.STATE_PATCH, {"patch": jsonable(operations)})


class SubtaskRef:
    """One subtask of the run's task; see :meth:`Run.subtask`."""

    def __init__(self, run: Run, subtask_id: str) -> None:
        self.subtask_id = subtask_id
        self._run = run

    async def done(self, done: bool = True) -> str:
        """Tick the subtask (``done=False`` unticks it); a subtask of another task is refused
        by the server (:class:`EventRejected` from the next flush)."""
        return await self._run._emit(
            E.SUBTASK_UPDATED, {"subtask_id": self.subtask_id, "done": done}
        )
