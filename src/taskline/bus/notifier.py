"""The notifier: how "task T has new committed events" reaches every process.

Contract of a :class:`Notifier`:

* ``publish(messages)`` takes envelopes that are **already committed** to the durable log, all
  of one task, in seq order (or, from ``EventBus.announce``, changes outside any task's log:
  no ``seq``, no ``task_id``). Every callback registered with ``subscribe`` receives the batch
  once: callbacks of this process and, for a cross-process backend, those of every other
  process that uses the same channel.
* Callbacks of the publishing process are called directly, in registration order, before
  ``publish`` returns, so a process never waits on the network to see its own events.
* A callback's exception is logged and isolated: later callbacks still run and the publisher
  never sees it. Cancelling ``publish`` cancels the callback that is running.
* A notifier only says "something new". It is not durable: a process that is disconnected
  when a batch is published never receives it, and its subscribers recover from the log
  (they know their last seq and ask for everything after it).

:class:`MemoryNotifier` serves one process; :class:`~taskline.bus.redis_notifier.RedisNotifier`
serves many through Redis pub/sub.
"""

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from taskline.domain.events import WebSocketMessage

__all__ = ["BatchCallback", "MemoryNotifier", "Notifier", "call_callbacks"]

logger = logging.getLogger(__name__)

#: Receives one batch of committed envelopes (one task, seq order). Must not mutate the list.
BatchCallback = Callable[[list[WebSocketMessage]], Awaitable[None]]


class Notifier(Protocol):
    """The cross-process channel that announces committed events (see the module docstring)."""

    @property
    def reconnects(self) -> int:
        """How many times the channel was re-established after a failure (a lost
        subscription): batches published in between never arrived here."""
        ...

    @property
    def connected(self) -> bool:
        """True while batches of other processes can arrive (always, for one process)."""
        ...

    async def publish(self, messages: Sequence[WebSocketMessage]) -> None:
        """Announce ``messages`` (committed, one task, seq order) to every callback.

        Raises:
            StorageError: the shared channel could not be reached; local callbacks have
                already run.
            RuntimeError: the notifier is closed (or, for a network backend, not started).
        """
        ...

    def subscribe(self, callback: BatchCallback) -> None:
        """Call ``callback`` with every batch published from now on, here or elsewhere."""
        ...

    async def start(self) -> None:
        """Connect and begin receiving batches from other processes."""
        ...

    async def close(self) -> None:
        """Stop receiving and release connections. Closing twice is harmless."""
        ...


async def call_callbacks(callbacks: Iterable[BatchCallback], batch: list[WebSocketMessage]) -> None:
    """Await each callback with ``batch`` in order; log and swallow an ``Exception`` from one.

    ``CancelledError`` is not swallowed: cancelling the caller stops the delivery.
    """
    for callback in tuple(callbacks):
        try:
            await callback(batch)
        except Exception:
            first = batch[0]
            logger.exception(
                "notifier callback %r failed on %d event(s) of task %r from seq %s",
                callback,
                len(batch),
                first.task_id,
                first.seq,
            )


class MemoryNotifier:
    """The in-process notifier: ``publish`` calls every callback directly, in order.

    Nothing crosses a process boundary, so ``start`` has nothing to do; ``publish`` works
    before ``start`` and raises ``RuntimeError`` after ``close``. One instance may be shared by
    several buses of one process: each sees the batches of all.
    """

    def __init__(self) -> None:
        self._callbacks: list[BatchCallback] = []
        self._closed = False

    @property
    def reconnects(self) -> int:
        """Always 0: nothing is ever lost on the way."""
        return 0

    @property
    def connected(self) -> bool:
        """Always True: there is no other process to be cut off from."""
        return True

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryNotifier {state} callbacks={len(self._callbacks)}>"

    def subscribe(self, callback: BatchCallback) -> None:
        """Call ``callback`` with every batch published from now on."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Nothing to connect: present to satisfy :class:`Notifier`."""

    async def publish(self, messages: Sequence[WebSocketMessage]) -> None:
        """Call every callback with ``messages``; an empty batch is ignored.

        Raises:
            RuntimeError: the notifier is closed.
        """
        if self._closed:
            raise RuntimeError("MemoryNotifier: expected open, got closed")
        if messages:
            await call_callbacks(self._callbacks, list(messages))

    async def close(self) -> None:
        """Refuse further publishes. Closing twice is harmless."""
        self._closed = True
