"""Subscriptions and the workers that run their handlers.

Each :class:`HandlerSubscription` (a handler registered with ``EventBus.subscribe``; not the
SDK's live stream, :class:`taskline.sdk.Subscription`) has its own bounded queue and, once a
message arrives, its own worker task, so:

* a handler sees messages one at a time, in the order they reached the bus;
* a slow or failing handler delays only its own subscription, never the publisher or the
  other handlers;
* a handler that falls ``queue_size`` messages behind loses the newest ones (counted in
  ``dropped`` and in the bus's ``handlers_dropped``). Handlers are hooks; viewers get their
  events from the hub, which reads any gap from the log.

An async handler call is bounded by ``timeout`` seconds and then cancelled. A sync handler runs
on the event loop and cannot be interrupted: it must be quick.
"""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.domain.ids import new_id

__all__ = ["Handler", "HandlerCounters", "HandlerRunner", "HandlerSubscription"]

logger = logging.getLogger(__name__)

#: A handler takes one committed envelope; it may be a plain or an ``async`` function.
Handler = Callable[[WebSocketMessage], Awaitable[None] | None]


class HandlerSubscription:
    """A handler registered on an :class:`~taskline.bus.EventBus` by ``subscribe``.

    Pass it to ``unsubscribe`` to stop it. ``event_type`` ``None`` matches every type and
    ``task_id`` ``None`` every task. ``calls``, ``errors`` and ``dropped`` count what happened
    to this subscription's messages; ``active`` turns false on ``unsubscribe``.
    """

    __slots__ = (
        "_overflowing",
        "_queue",
        "_worker",
        "active",
        "calls",
        "dropped",
        "errors",
        "event_type",
        "handler",
        "id",
        "task_id",
    )

    def __init__(
        self,
        event_type: WebSocketEventType | None,
        handler: Handler,
        task_id: str | None,
        *,
        queue_size: int,
    ) -> None:
        self.id = new_id("sub")
        self.event_type = event_type
        self.task_id = task_id
        self.handler = handler
        self.active = True
        self.calls = 0
        self.errors = 0
        self.dropped = 0
        # ``None`` in the queue tells the worker to stop.
        self._queue: asyncio.Queue[WebSocketMessage | None] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._overflowing = False

    def __repr__(self) -> str:
        kind = self.event_type.value if self.event_type is not None else "*"
        task = self.task_id or "*"
        state = "active" if self.active else "inactive"
        return (
            f"<HandlerSubscription {self.id} {kind} task={task} {state} handler={self.handler!r}>"
        )

    @property
    def key(self) -> tuple[WebSocketEventType | None, str | None]:
        """The (event type, task) pair this subscription is indexed under."""
        return (self.event_type, self.task_id)

    def matches(self, message: WebSocketMessage) -> bool:
        """Whether ``message`` is for this subscription."""
        return (self.event_type is None or self.event_type == message.event_type) and (
            self.task_id is None or self.task_id == message.task_id
        )

    @property
    def backlog(self) -> int:
        """Messages waiting for this subscription's handler (the running call excluded)."""
        return self._queue.qsize()


@dataclass(slots=True)
class HandlerCounters:
    """What happened to handler calls, over all subscriptions of one bus."""

    calls: int = 0
    errors: int = 0  # raised an exception or timed out
    timeouts: int = 0  # the part of ``errors`` that ran past the timeout
    dropped: int = 0  # never called: the subscription's queue was full


class HandlerRunner:
    """Runs handlers for the subscriptions of one bus (see the module docstring).

    Args:
        timeout: seconds an async handler call may take; ``None`` lets it run forever.
    """

    def __init__(self, *, timeout: float | None) -> None:
        self.timeout = timeout
        self.counters = HandlerCounters()
        self._pending = 0  # messages queued or being handled
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Handler calls queued or running."""
        return self._pending

    def offer(self, subscription: HandlerSubscription, message: WebSocketMessage) -> bool:
        """Queue ``message`` for ``subscription``'s handler; never waits.

        Returns False, counting a drop, when the subscription's queue is full, and False
        without counting when the subscription is inactive or the runner is closed.
        Must be called from the event loop (the worker is created on first use).
        """
        if self._closed or not subscription.active:
            return False
        try:
            subscription._queue.put_nowait(message)
        except asyncio.QueueFull:
            subscription.dropped += 1
            self.counters.dropped += 1
            if not subscription._overflowing:
                subscription._overflowing = True
                logger.warning(
                    "handler %r is %d messages behind; dropping new messages until it catches up",
                    subscription.handler,
                    subscription._queue.maxsize,
                )
            return False
        subscription._overflowing = False
        self._pending += 1
        self._idle.clear()
        if subscription._worker is None:
            subscription._worker = self._spawn(self._work(subscription), subscription.id)
        return True

    def stop(self, subscription: HandlerSubscription) -> None:
        """Discard ``subscription``'s queued messages; its worker ends after the running call."""
        subscription.active = False
        discarded = 0
        while not subscription._queue.empty():
            if subscription._queue.get_nowait() is not None:
                discarded += 1
        self._done(discarded)
        if subscription._worker is not None:
            subscription._queue.put_nowait(None)

    async def wait_idle(self) -> None:
        """Return once no handler call is queued or running (wrap in a timeout if needed).

        Calls queued by a handler while this waits are waited for too.
        """
        await self._idle.wait()

    async def close(self) -> None:
        """Cancel every worker (running handler calls included) and wait for them to end."""
        self._closed = True
        workers = set(self._workers)
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)
        self._pending = 0
        self._idle.set()

    # -- internals ----------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine, name=f"taskline-handler:{name}")
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)
        return task

    def _done(self, count: int) -> None:
        self._pending -= count
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()

    async def _work(self, subscription: HandlerSubscription) -> None:
        queue = subscription._queue
        while True:
            message = await queue.get()
            if message is None:
                return
            try:
                await self._call(subscription, message)
            finally:
                self._done(1)

    async def _call(self, subscription: HandlerSubscription, message: WebSocketMessage) -> None:
        subscription.calls += 1
        self.counters.calls += 1
        deadline = asyncio.timeout(self.timeout)
        try:
            result = subscription.handler(message)
            if inspect.isawaitable(result):
                async with deadline:
                    await result
        except Exception as exc:
            subscription.errors += 1
            self.counters.errors += 1
            if isinstance(exc, TimeoutError) and deadline.expired():
                self.counters.timeouts += 1
                logger.warning(
                    "handler %r timed out after %s s on %s #%s of task %r",
                    subscription.handler,
                    self.timeout,
                    message.event_type.value,
                    message.seq,
                    message.task_id,
                )
            else:
                logger.exception(
                    "handler %r failed on %s #%s of task %r",
                    subscription.handler,
                    message.event_type.value,
                    message.seq,
                    message.task_id,
                )
