"""The synchronous face of the live features: runs and subscriptions for plain sync code.

They run on an :class:`AsyncClient` inside an event loop in a background thread
(:class:`LoopThread`, one per :class:`~taskline.sdk.Client`); each blocking method hands a
coroutine to that loop and waits for its answer. Callbacks given to
:meth:`SyncRun.on_message` / :meth:`SyncRun.on_command` therefore run in that background
thread, not the caller's.
"""

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.domain.models import Task
from taskline.domain.status import AgentStatus
from taskline.sdk._config import CLIENT_DEFAULT, ClientDefault
from taskline.sdk._models import HumanMessage
from taskline.sdk._run import (
    CommandCallback,
    MessageCallback,
    MessageStream,
    Run,
    Step,
    ToolCall,
)
from taskline.sdk._subscription import Subscription

__all__ = ["LoopThread", "SyncMessageStream", "SyncRun", "SyncSubscription"]

T = TypeVar("T")
C = TypeVar("C")

#: Seconds that stopping the loop thread waits for its leftover tasks.
_STOP_TIMEOUT = 10.0


class LoopThread:
    """An asyncio event loop running in a daemon thread, started on first use."""

    def __init__(self, name: str = "taskline-sdk") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and return its result (or raise its exception).

        If the caller is interrupted while waiting (``KeyboardInterrupt``), the coroutine is
        cancelled. Calling this from the loop's own thread (a callback) would deadlock and
        raises ``RuntimeError`` instead.
        """
        loop = self._ensure()
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("blocking SDK calls cannot be made from an SDK callback")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs on the loop, stop it and join the thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def cancel_leftovers() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
            await loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_leftovers(), loop).result(_STOP_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()


class _Blocking(Generic[C]):
    """Turns an async context manager into a sync one on the loop thread."""

    def __init__(self, loop: LoopThread, manager: Any) -> None:
        self._loop = loop
        self._manager = manager

    def __enter__(self) -> C:
        entered: C = self._loop.call(self._manager.__aenter__())
        return entered

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call(self._manager.__aexit__(exc_type, exc, tb))


class SyncMessageStream:
    """A streamed message for sync code; see :meth:`Run.message`."""

    def __init__(self, loop: LoopThread, stream: MessageStream) -> None:
        self._loop = loop
        self._stream = stream

    @property
    def message_id(self) -> str:
        return self._stream.message_id

    @property
    def text(self) -> str:
        """Everything written so far."""
        return self._stream.text

    def write(self, text: str) -> None:
        """Send ``text`` as the next ``message.delta``."""
        self._loop.call(self._stream.write(text))

    def __enter__(self) -> Self:
        self._loop.call(self._stream.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call(self._stream.__aexit__(exc_type, exc, tb))


class _SyncRunState:
    def __init__(self, loop: LoopThread, run: Run) -> None:
        self._loop = loop
        self._run = run

    def snapshot(self, document: Any) -> str:
        """Replace the task's shared state document; see :meth:`RunState.snapshot`."""
        return self._loop.call(self._run.state.snapshot(document))

    def patch(self, operations: list[dict[str, Any]]) -> str:
        """Apply RFC 6902 operations; see :meth:`RunState.patch`."""
        return self._loop.call(self._run.state.patch(operations))


class _SyncSubtaskRef:
    def __init__(self, loop: LoopThread, run: Run, subtask_id: str) -> None:
        self._loop = loop
        self._run = run
        self.subtask_id = subtask_id

    def done(self, done: bool = True) -> str:
        """Tick (or untick) the subtask; see :meth:`SubtaskRef.done`."""
        return self._loop.call(self._run.subtask(self.subtask_id).done(done))


class SyncRun:
    """A :class:`Run` for sync code: the same methods, blocking; use it with ``with``.

    Example::

        with Client(url) as taskline, taskline.run(task_id, agent="agent_x") as run:
            run.progress(0.5, "Halfway")
            with run.tool_call("read_file", {"path": "a.md"}) as call:
                call.result = len(open("a.md").read())

    Everything :class:`Run` documents holds; callbacks run in the SDK's background thread
    and must not call back into the run's blocking methods (``RuntimeError``).
    """

    def __init__(self, loop: LoopThread, run: Run) -> None:
        self._loop = loop
        self._run = run
        self.state = _SyncRunState(loop, run)

    def __repr__(self) -> str:
        return f"<SyncRun {self._run.run_id} task={self.task_id} {self._run.phase.value}>"

    @property
    def run(self) -> Run:
        """The underlying async run (its methods must be awaited on the SDK's loop)."""
        return self._run

    @property
    def task_id(self) -> str:
        return self._run.task_id

    @property
    def agent_id(self) -> str:
        return self._run.agent_id

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def task(self) -> Task | None:
        return self._run.task

    @property
    def cancelled(self) -> bool:
        return self._run.cancelled

    @property
    def connections(self) -> int:
        return self._run.connections

    @property
    def pending(self) -> int:
        return self._run.pending

    @property
    def paused(self) -> bool:
        return self._run.paused

    @property
    def messages(self) -> list[HumanMessage]:
        return list(self._run.messages)

    def __enter__(self) -> Self:
        self._loop.call(self._run.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call(self._run.__aexit__(exc_type, exc, tb))

    def wait_if_paused(self, timeout: float | None = None) -> bool:
        """Block while the task is paused; True to go on, False if cancelled."""
        return self._loop.call(self._run.wait_if_paused(timeout))

    def on_message(self, callback: MessageCallback) -> None:
        """See :meth:`Run.on_message` (the callback runs in the SDK's thread)."""
        self._loop.call(_apply(self._run.on_message, callback))

    def on_command(self, callback: CommandCallback) -> None:
        """See :meth:`Run.on_command` (the callback runs in the SDK's thread)."""
        self._loop.call(_apply(self._run.on_command, callback))

    def emit(self, event_type: str | WebSocketEventType, data: dict[str, Any]) -> str:
        """See :meth:`Run.emit`."""
        return self._loop.call(self._run.emit(event_type, data))

    def flush(self, *, timeout: float | ClientDefault | None = CLIENT_DEFAULT) -> None:
        """See :meth:`Run.flush`."""
        self._loop.call(self._run.flush(timeout=timeout))

    def progress(
        self, progress: float, message: str | None = None, confidence: float | None = None
    ) -> str:
        """See :meth:`Run.progress`."""
        return self._loop.call(self._run.progress(progress, message, confidence))

    def confidence(self, confidence: float) -> str:
        """See :meth:`Run.confidence`."""
        return self._loop.call(self._run.confidence(confidence))

    def status(self, status: str | AgentStatus) -> str:
        """See :meth:`Run.status`."""
        return self._loop.call(self._run.status(status))

    def tool_call(
        self, name: str, args: Any = None, *, parent_message_id: str | None = None
    ) -> _Blocking[ToolCall]:
        """See :meth:`Run.tool_call`; ``with run.tool_call(...) as call: call.result = ...``."""
        call = self._run.tool_call(name, args, parent_message_id=parent_message_id)
        return _Blocking(self._loop, call)

    def message(self, role: str = "assistant") -> SyncMessageStream:
        """See :meth:`Run.message`; ``with run.message() as m: m.write("...")``."""
        return SyncMessageStream(self._loop, self._run.message(role))

    def step(self, name: str) -> _Blocking[Step]:
        """See :meth:`Run.step`."""
        return _Blocking(self._loop, self._run.step(name))

    def subtask(self, subtask_id: str) -> _SyncSubtaskRef:
        """See :meth:`Run.subtask`."""
        return _SyncSubtaskRef(self._loop, self._run, subtask_id)

    def complete(self, result: Any = None) -> str:
        """See :meth:`Run.complete`."""
        return self._loop.call(self._run.complete(result))

    def fail(self, error: str | BaseException) -> str:
        """See :meth:`Run.fail`."""
        return self._loop.call(self._run.fail(error))


async def _apply(register: Any, callback: Any) -> None:
    register(callback)  # on the loop thread: callbacks given earlier messages run there too


class SyncSubscription:
    """A blocking iterator over a task's events; see :class:`Subscription`.

    ``for event in subscription`` blocks until the next event; it ends only after
    :meth:`close` (call it from another thread, or leave a ``with`` block).
    """

    def __init__(self, loop: LoopThread, subscription: Subscription) -> None:
        self._loop = loop
        self._subscription = subscription

    @property
    def last_seq(self) -> int | None:
        return self._subscription.last_seq

    @property
    def subscription(self) -> Subscription:
        return self._subscription

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> WebSocketMessage:
        try:
            return self._loop.call(self._subscription.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Close the connection; iteration ends."""
        self._loop.call(self._subscription.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
