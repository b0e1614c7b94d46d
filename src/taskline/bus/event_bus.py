"""EventBus: in-process handlers, recent history and statistics over the committed event flow.

Flow of one event::

    emit ─ validate ─ persist (the app's durable log: one transaction, per-task seq) ─┐
    REST route that committed events itself ──────────────────────── dispatch ◄──────┘
        dispatch ─ notifier.publish ─► every bus on the channel (this one directly,
                                        other processes through Redis)
            └─► on each bus: history → handler queues → listeners (the WebSocket hub)

Rules:

* Only committed events travel. ``emit`` persists before anything is delivered; ``dispatch``
  is for events that the caller has committed already. The bus never imports the store: the
  app injects ``persist``.
* Handlers never slow the publisher (see :mod:`taskline.bus.subscription`): they run on
  per-subscription workers, bounded by ``handler_timeout``; failures are logged and counted.
* Listeners are awaited in the delivering task, in order, with every batch (local or remote),
  after history and handler queues. They must not block: the hub only fills bounded outboxes.
* Batches are delivered in the order they reach the bus. Two concurrent ``emit`` calls for one
  task may reach it out of seq order, and other processes' batches interleave with local ones;
  consumers that need strict order track ``seq`` and fill gaps from the log, as the hub does.
* If the notifier cannot reach other processes (``StorageError``), ``dispatch`` logs it and
  counts ``notify_errors`` but does not raise: the events are committed and delivered locally,
  and remote subscribers recover from the log.
* While the notifier's link is down (:attr:`EventBus.link`), the log poller
  (:mod:`taskline.realtime.log_poller`) reads what other processes committed and hands it to
  :meth:`EventBus.receive`, which delivers it here as a notifier batch would be; a copy the
  notifier brings later of an event ``receive`` delivered is skipped (nothing twice).
"""

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict, Unpack

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from taskline.bus.history import EventHistory
from taskline.bus.notifier import BatchCallback, MemoryNotifier, Notifier
from taskline.bus.subscription import Handler, HandlerRunner, HandlerSubscription
from taskline.domain.errors import InvalidInputError, StorageError
from taskline.domain.events import (
    LOGGED_EVENTS,
    EventIn,
    WebSocketEventType,
    WebSocketMessage,
    validate_data,
)
from taskline.domain.ids import new_id
from taskline.domain.status import AgentStatus

__all__ = ["Attribution", "BusState", "EventBus", "LinkStatus", "PersistEvents"]

logger = logging.getLogger(__name__)

#: Appends events to a task's log in one transaction; returns one committed envelope per
#: event, in order, with its ``seq`` (for a re-sent ``id``, the envelope already stored).
PersistEvents = Callable[[str, list[EventIn]], Awaitable[list[WebSocketMessage]]]

ALL_TYPES = "*"
_Key = tuple[WebSocketEventType | None, str | None]
#: Tasks whose highest seq :meth:`EventBus.receive` delivered is remembered (oldest dropped).
_RECEIVED_TASKS = 10_000


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """Whether batches of other processes reach this bus now.

    ``up``: the notifier is subscribed and this process's last publish to it did not fail.
    ``breaks``: moves on at every break seen (a lost subscription, a failed publish), so a
    break shorter than the interval between two looks is noticed too.
    """

    up: bool
    breaks: int


class _Origin(TypedDict, total=False):
    source: str | None
    run_id: str | None
    parent_run_id: str | None
    client_id: str | None
    event_id: str | None


class Attribution(_Origin, total=False):
    """Optional keyword arguments of the ``emit_*`` methods: who produced the event."""

    agent_id: str | None


class BusState(StrEnum):
    """Lifecycle of an :class:`EventBus`: new → started → closed."""

    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


def _event_type(value: WebSocketEventType | str, *, loggable: bool) -> WebSocketEventType:
    try:
        kind = WebSocketEventType(value)
    except ValueError:
        raise InvalidInputError(f"unknown event type {value!r}", field="event_type") from None
    if loggable and kind not in LOGGED_EVENTS:
        raise InvalidInputError(
            f"{kind.value!r} is a connection message, not a task event: it never goes "
            "through the log or the bus",
            field="event_type",
        )
    return kind


class EventBus:
    """Route committed task events to handlers, listeners and other processes.

    Args:
        persist: appends events to the durable log (see :data:`PersistEvents`).
        notifier: the channel between processes; a new :class:`MemoryNotifier` by default.
            The bus subscribes to it at once and closes it in ``close``.
        history_size: how many recent events ``get_event_history`` can see.
        handler_queue_size: messages a subscription may fall behind before new ones are dropped.
        handler_timeout: seconds an async handler call may run; ``None`` for no limit.

    The bus delivers as soon as it is built (handler workers start on first use); ``start``
    is needed to receive other processes' events and, for a network notifier, to publish.
    """

    def __init__(
        self,
        *,
        persist: PersistEvents,
        notifier: Notifier | None = None,
        # limits
        history_size: int = 1000,
        handler_queue_size: int = 1000,
        # timeouts
        handler_timeout: float | None = 5.0,
    ) -> None:
        if handler_queue_size < 1:
            raise ValueError("handler_queue_size must be >= 1")
        if handler_timeout is not None and handler_timeout <= 0:
            raise ValueError("handler_timeout must be positive, or None for no limit")
        self._persist = persist
        self._notifier: Notifier = notifier if notifier is not None else MemoryNotifier()
        self._notifier.subscribe(self._deliver)
        self._history = EventHistory(history_size)
        self._queue_size = handler_queue_size
        self._runner = HandlerRunner(timeout=handler_timeout)
        #: subscriptions by their key, (event type or None, task id or None)
        self._index: dict[_Key, list[HandlerSubscription]] = {}
        self._listeners: list[BatchCallback] = []
        self._state = BusState.NEW
        # statistics
        self._emitted = 0
        self._dispatched = 0
        self._delivered = 0
        self._listener_errors = 0
        self._notify_errors = 0
        self._received_events = 0
        self._duplicates_skipped = 0
        #: task id -> highest seq ``receive`` delivered (the notifier's copies are skipped)
        self._received: dict[str, int] = {}
        #: the notifier's ``reconnects`` when a publish last failed (None: the last one worked)
        self._failed_at: int | None = None

    def __repr__(self) -> str:
        return (
            f"<EventBus {self._state} subscriptions={self._subscription_count()} "
            f"history={len(self._history)} notifier={self._notifier!r}>"
        )

    @property
    def state(self) -> BusState:
        """Where the bus is in its lifecycle."""
        return self._state

    @property
    def notifier(self) -> Notifier:
        """The channel between processes."""
        return self._notifier

    @property
    def link(self) -> LinkStatus:
        """Whether other processes' batches reach this bus now (see :class:`LinkStatus`).

        A failed publish keeps ``up`` False until a publish succeeds or the notifier
        subscribes again.
        """
        notifier = self._notifier
        failing = self._failed_at is not None and self._failed_at == notifier.reconnects
        return LinkStatus(
            up=notifier.connected and not failing,
            breaks=notifier.reconnects + self._notify_errors,
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the notifier, so that batches of other processes arrive here.

        Raises:
            StorageError: the notifier cannot connect; the bus stays new.
            RuntimeError: the bus was already started or closed.
        """
        if self._state is not BusState.NEW:
            raise RuntimeError(f"EventBus: expected new, got {self._state}")
        await self._notifier.start()
        self._state = BusState.STARTED

    async def close(self) -> None:
        """Close the notifier, then cancel handler workers (running calls included).

        To let queued handler calls finish first, await :meth:`wait_for_handlers` before.
        ``emit`` and ``dispatch`` raise ``RuntimeError`` afterwards. Closing twice is harmless.
        """
        if self._state is BusState.CLOSED:
            return
        self._state = BusState.CLOSED
        try:
            await self._notifier.close()
        finally:
            await self._runner.close()

    async def wait_for_handlers(self) -> None:
        """Return once no handler call is queued or running on this bus."""
        await self._runner.wait_idle()

    # -- subscriptions ------------------------------------------------------------------

    def subscribe(
        self,
        event_type: WebSocketEventType | str | None,
        handler: Handler,
        task_id: str | None = None,
    ) -> HandlerSubscription:
        """Call ``handler`` with each committed event of ``event_type`` on ``task_id``.

        ``event_type`` ``None`` or ``"*"`` means every type; ``task_id`` ``None`` every task.
        ``handler`` may be a plain or an ``async`` function taking a :class:`WebSocketMessage`.

        Raises:
            InvalidInputError: unknown event type, or a connection message type (never logged).
            TypeError: ``handler`` is not callable.
        """
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        kind = (
            None
            if event_type is None or event_type == ALL_TYPES
            else _event_type(event_type, loggable=True)
        )
        subscription = HandlerSubscription(kind, handler, task_id, queue_size=self._queue_size)
        self._index.setdefault(subscription.key, []).append(subscription)
        return subscription

    def unsubscribe(self, subscription: HandlerSubscription) -> bool:
        """Stop ``subscription``: queued calls are discarded, a running call may finish.

        Returns False if it was not subscribed to this bus (or already unsubscribed).
        """
        subscriptions = self._index.get(subscription.key, [])
        if not any(s is subscription for s in subscriptions):
            return False
        remaining = [s for s in subscriptions if s is not subscription]
        if remaining:
            self._index[subscription.key] = remaining
        else:
            del self._index[subscription.key]
        self._runner.stop(subscription)
        return True

    def add_listener(self, callback: BatchCallback) -> None:
        """Await ``callback`` with every committed batch, local or remote, in arrival order.

        A batch holds events of one task in seq order. The callback runs in the delivering
        task (the publisher's, or the notifier's listener), so it must not block; an exception
        from it is logged and counted (``listener_errors``).
        """
        self._listeners.append(callback)

    def remove_listener(self, callback: BatchCallback) -> bool:
        """Stop calling ``callback``; False if it was not a listener."""
        try:
            self._listeners.remove(callback)
        except ValueError:
            return False
        return True

    # -- publishing ---------------------------------------------------------------------

    async def emit(
        self,
        task_id: str,
        event_type: WebSocketEventType | str,
        data: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        run_id: str | None = None,
        agent_id: str | None = None,
        parent_run_id: str | None = None,
        client_id: str | None = None,
        event_id: str | None = None,
    ) -> WebSocketMessage:
        """Validate an event, append it to the task's log, then :meth:`dispatch` it.

        Returns the committed envelope (with its ``seq``). Nothing is persisted if validation
        fails, and nothing is delivered if ``persist`` fails.

        Raises:
            InvalidInputError: unknown or connection event type, or ``data``/attribution that
                does not fit the type's schema (``field`` names the first bad field).
            RuntimeError: the bus is closed.
            Whatever ``persist`` raises (for example ``NotFoundError``, ``StorageError``).
        """
        self._require_open()
        kind = _event_type(event_type, loggable=True)
        try:
            payload = validate_data(kind, dict(data or {}))
        except PydanticSerializationError as exc:
            raise InvalidInputError(f"data: not a JSON value ({exc})", field="data") from None
        try:
            event = EventIn(
                id=event_id,
                event_type=kind,
                data=payload,
                source=source,
                client_id=client_id,
                run_id=run_id,
                parent_run_id=parent_run_id,
                agent_id=agent_id,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None
        committed = await self._persist(task_id, [event])
        if len(committed) != 1:
            raise RuntimeError(f"persist returned {len(committed)} envelopes for 1 event")
        self._emitted += 1
        await self.dispatch(committed)
        return committed[0]

    async def dispatch(self, messages: Sequence[WebSocketMessage]) -> None:
        """Deliver events that are already committed: history, handlers, listeners, others.

        ``messages`` may mix tasks; they are published as one batch per task, in seq order.
        Returns after local history, handler queues and listeners have the events (handlers
        themselves run later). An empty sequence does nothing.

        Raises:
            ValueError: a message has no ``seq`` or no ``task_id`` (it was never committed).
            RuntimeError: the bus is closed, or its network notifier was not started.
        """
        self._require_open()
        for batch in _batches_by_task(messages):
            self._dispatched += len(batch)
            try:
                await self._publish(batch)
            except StorageError as exc:
                logger.warning(
                    "could not notify other processes of %d event(s) of task %r "
                    "(seq %s..%s): %s; they will catch up from the log",
                    len(batch),
                    batch[0].task_id,
                    batch[0].seq,
                    batch[-1].seq,
                    exc,
                )

    async def announce(self, messages: Sequence[WebSocketMessage]) -> None:
        """Deliver changes that are not task events (no ``seq``, no ``task_id``), committed.

        For changes the board shows that no task's log holds (an agent's status PATCHed
        through the registry): they travel like events (this process directly, the others
        through the notifier) but have no place in any log, so a process that misses one
        (Redis down) sees the change only when its viewers read the registry again.

        Raises:
            ValueError: a message carries a ``seq`` or a ``task_id`` (use :meth:`dispatch`).
            RuntimeError: the bus is closed, or its network notifier was not started.
        """
        self._require_open()
        batch = list(messages)
        for message in batch:
            if message.seq is not None or message.task_id is not None:
                raise ValueError(
                    f"announce takes changes outside any task's log; {message.id!r} has "
                    f"seq={message.seq!r}, task_id={message.task_id!r}"
                )
        if not batch:
            return
        self._dispatched += len(batch)
        try:
            await self._publish(batch)
        except StorageError as exc:
            logger.warning(
                "could not notify other processes of %d change(s) outside the log: %s",
                len(batch),
                exc,
            )

    async def receive(self, messages: Sequence[WebSocketMessage]) -> None:
        """Deliver committed events that reached this process without the notifier (the log
        poller's, while Redis is down) to this process only, as a notifier batch would be:
        history, handler queues, listeners; one batch per task, in seq order.

        An event at or below the highest seq ``receive`` delivered for its task is skipped,
        and so is the notifier's copy of it if one arrives later (published after a
        resubscription, read from the log first): nothing is delivered twice.

        Raises:
            ValueError: a message has no ``seq`` or no ``task_id`` (it was never committed).
            RuntimeError: the bus is closed.
        """
        self._require_open()
        for batch in _batches_by_task(messages):
            fresh = self._unseen(batch)
            if not fresh:
                continue
            task_id = fresh[0].task_id
            assert task_id is not None
            self._received.pop(task_id, None)  # re-inserted last: the newest are kept
            self._received[task_id] = fresh[-1].seq or 0
            while len(self._received) > _RECEIVED_TASKS:
                del self._received[next(iter(self._received))]
            self._received_events += len(fresh)
            await self._fan_out(fresh)

    # -- convenience emitters (the spec's names) ------------------------------------------

    async def emit_task_event(
        self,
        task_id: str,
        event_type: WebSocketEventType | str,
        data: dict[str, Any] | None = None,
        **attribution: Unpack[Attribution],
    ) -> WebSocketMessage:
        """Emit any task event; same as :meth:`emit`."""
        return await self.emit(task_id, event_type, data, **attribution)

    async def emit_agent_status_change(
        self,
        task_id: str,
        agent_id: str,
        status: AgentStatus | str,
        previous: AgentStatus | str | None = None,
        **attribution: Unpack[_Origin],
    ) -> WebSocketMessage:
        """Emit ``agent_status_change`` ``{agent_id, status, previous}``, attributed to the agent.

        Raises:
            InvalidInputError: ``status`` or ``previous`` is not an agent status.
        """
        data = {"agent_id": agent_id, "status": str(status), "previous": previous}
        return await self.emit(
            task_id, WebSocketEventType.AGENT_STATUS_CHANGE, data, agent_id=agent_id, **attribution
        )

    async def emit_progress_update(
        self,
        task_id: str,
        progress: float,
        message: str | None = None,
        confidence: float | None = None,
        **attribution: Unpack[Attribution],
    ) -> WebSocketMessage:
        """Emit ``progress_update`` ``{progress, message, confidence}`` (fractions 0..1).

        Raises:
            InvalidInputError: ``progress`` or ``confidence`` outside 0..1.
        """
        data = {"progress": progress, "message": message, "confidence": confidence}
        return await self.emit(task_id, WebSocketEventType.PROGRESS_UPDATE, data, **attribution)

    async def emit_tool_call(
        self,
        task_id: str,
        tool_name: str,
        args: Any,
        result: Any = None,
        *,
        tool_call_id: str | None = None,
        error: str | None = None,
        duration_ms: float | None = None,
        **attribution: Unpack[Attribution],
    ) -> WebSocketMessage:
        """Emit a tool call: ``tool_call.start`` while it runs, ``tool_call.end`` when it is done.

        Without ``result`` and ``error`` this emits ``tool_call.start`` ``{tool_call_id, name,
        args}``; pass the returned ``data["tool_call_id"]`` to the later call that reports the
        end. With a ``result`` or an ``error`` it emits ``tool_call.end`` ``{tool_call_id, name,
        result, error, duration_ms}``. A missing ``tool_call_id`` is generated (``call_…``).
        (A tool whose result is ``None`` and that did not fail ends with
        ``emit_task_event(task_id, "tool_call.end", {...})``.)
        """
        call_id = tool_call_id or new_id("call")
        if result is None and error is None:
            start = {"tool_call_id": call_id, "name": tool_name, "args": args}
            return await self.emit(
                task_id, WebSocketEventType.TOOL_CALL_START, start, **attribution
            )
        end = {
            "tool_call_id": call_id,
            "name": tool_name,
            "result": result,
            "error": error,
            "duration_ms": duration_ms,
        }
        return await self.emit(task_id, WebSocketEventType.TOOL_CALL_END, end, **attribution)

    # -- history and statistics ---------------------------------------------------------

    def get_event_history(
        self,
        task_id: str | None = None,
        event_type: WebSocketEventType | str | None = None,
        limit: int | None = 100,
    ) -> list[WebSocketMessage]:
        """The newest ``limit`` recent events matching the filters, oldest first.

        Only the last ``history_size`` events delivered to this bus are kept (local and
        remote, in arrival order); the log holds the rest. ``None`` disables a filter or
        the limit; ``"*"`` also means every type; a ``limit`` <= 0 gives an empty list.

        Raises:
            InvalidInputError: unknown event type.
        """
        kind = (
            None
            if event_type is None or event_type == ALL_TYPES
            else _event_type(event_type, loggable=False)
        )
        return self._history.query(task_id, kind, limit)

    def get_stats(self) -> dict[str, Any]:
        """Counters since the bus was built, and its current sizes.

        ``events_emitted``: persisted by :meth:`emit`; ``events_dispatched``: passed to
        :meth:`dispatch` (emitted ones included); ``events_delivered``: reached this bus's
        history (local and remote); ``events_by_type``: delivered, per type;
        ``handler_errors`` includes ``handler_timeouts``; ``handlers_dropped``: handler calls
        skipped because a subscription's queue was full.
        """
        counters = self._runner.counters
        by_type: Counter[str] = Counter()
        for (kind, _task), subscriptions in self._index.items():
            by_type[kind.value if kind is not None else ALL_TYPES] += len(subscriptions)
        return {
            "state": self._state.value,
            "events_emitted": self._emitted,
            "events_dispatched": self._dispatched,
            "events_delivered": self._delivered,
            "events_by_type": dict(self._history.counts),
            "handler_calls": counters.calls,
            "handler_errors": counters.errors,
            "handler_timeouts": counters.timeouts,
            "handlers_dropped": counters.dropped,
            "handler_calls_pending": self._runner.pending,
            "listener_errors": self._listener_errors,
            "notify_errors": self._notify_errors,
            "events_received_from_log": self._received_events,
            "duplicates_skipped": self._duplicates_skipped,
            "subscriptions": {"total": sum(by_type.values()), "by_type": dict(by_type)},
            "listeners": len(self._listeners),
            "history_size": len(self._history),
            "history_capacity": self._history.capacity,
        }

    # -- delivery -----------------------------------------------------------------------

    async def _publish(self, batch: list[WebSocketMessage]) -> None:
        """Publish through the notifier, keeping :attr:`link` up to date (raises as it)."""
        try:
            await self._notifier.publish(batch)
        except StorageError:
            self._notify_errors += 1
            self._failed_at = self._notifier.reconnects
            raise
        self._failed_at = None

    def _unseen(self, batch: list[WebSocketMessage]) -> list[WebSocketMessage]:
        """``batch`` without the events :meth:`receive` delivered already (counted)."""
        first = batch[0]
        high = self._received.get(first.task_id or "") if first.task_id else None
        if high is None:
            return batch
        fresh = [m for m in batch if (m.seq or 0) > high]
        self._duplicates_skipped += len(batch) - len(fresh)
        return fresh

    async def _deliver(self, batch: list[WebSocketMessage]) -> None:
        """Notifier callback: skip what :meth:`receive` delivered, then fan out."""
        if self._state is BusState.CLOSED:
            return
        if self._received:
            batch = self._unseen(batch)
            if not batch:
                return
        await self._fan_out(batch)

    async def _fan_out(self, batch: list[WebSocketMessage]) -> None:
        """Record ``batch``, queue handler calls, then await listeners."""
        self._history.record(batch)
        self._delivered += len(batch)
        for message in batch:
            for subscription in self._matching(message):
                self._runner.offer(subscription, message)
        for listener in tuple(self._listeners):
            try:
                await listener(batch)
            except Exception:
                self._listener_errors += 1
                logger.exception(
                    "listener %r failed on %d event(s) of task %r",
                    listener,
                    len(batch),
                    batch[0].task_id,
                )

    def _matching(self, message: WebSocketMessage) -> Iterator[HandlerSubscription]:
        keys = {
            (None, None),
            (message.event_type, None),
            (None, message.task_id),
            (message.event_type, message.task_id),
        }
        for key in keys:
            yield from self._index.get(key, ())

    def _subscription_count(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._index.values())

    def _require_open(self) -> None:
        if self._state is BusState.CLOSED:
            raise RuntimeError("EventBus: expected new or started, got closed")


def _batches_by_task(messages: Sequence[WebSocketMessage]) -> list[list[WebSocketMessage]]:
    """Group committed envelopes per task (first-seen task first), each group in seq order."""
    groups: dict[str, list[WebSocketMessage]] = {}
    for message in messages:
        if message.seq is None or message.task_id is None:
            raise ValueError(
                f"dispatch takes committed task events; {message.id!r} has "
                f"seq={message.seq!r}, task_id={message.task_id!r}"
            )
        groups.setdefault(message.task_id, []).append(message)
    return [sorted(group, key=lambda m: m.seq or 0) for group in groups.values()]
