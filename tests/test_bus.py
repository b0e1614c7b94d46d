"""The event bus: handlers, history, stats and convenience emitters; memory and Redis notifiers.

``persist`` is :class:`EventLog`, a small in-test log that assigns per-task seqs the way the
store does, standing in for the database (the bus only needs "append, return envelopes").
"""

import asyncio
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

import taskline.bus
from taskline.bus import (
    EventBus,
    HandlerSubscription,
    LinkStatus,
    MemoryNotifier,
    RedisNotifier,
)
from taskline.domain.errors import InvalidInputError, StorageError
from taskline.domain.events import EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.ids import new_id
from tests.support.databases import unavailable
from tests.support.waiting import TIME_SCALE, async_wait_until

E = WebSocketEventType
#: Time unit for waits (scaled by TASKLINE_TEST_TIME_SCALE, see tests/support/waiting.py).
WAIT = 10.0 * TIME_SCALE
REDIS_URL = os.environ.get("TASKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class EventLog:
    """A durable log stand-in: per-task gapless seqs, envelopes returned in order."""

    def __init__(self) -> None:
        self.events: dict[str, list[WebSocketMessage]] = defaultdict(list)

    async def append(self, task_id: str, events: list[EventIn]) -> list[WebSocketMessage]:
        committed = []
        for event in events:
            log = self.events[task_id]
            envelope = WebSocketMessage(
                id=event.id or new_id("evt"),
                seq=len(log) + 1,
                task_id=task_id,
                event_type=event.event_type,
                data=event.data,
                timestamp=event.timestamp or datetime.now(UTC),
                source=event.source,
                client_id=event.client_id,
                run_id=event.run_id,
                parent_run_id=event.parent_run_id,
                agent_id=event.agent_id,
            )
            log.append(envelope)
            committed.append(envelope)
        return committed


class Recorder:
    """A handler (sync) that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[WebSocketMessage] = []

    def __call__(self, message: WebSocketMessage) -> None:
        self.messages.append(message)

    @property
    def types(self) -> list[str]:
        return [m.event_type.value for m in self.messages]


@pytest.fixture
def log() -> EventLog:
    return EventLog()


@pytest.fixture
async def make_bus(log: EventLog) -> AsyncIterator[Callable[..., EventBus]]:
    """Build buses over ``log``; every one is closed after the test."""
    buses: list[EventBus] = []

    def make(**options: Any) -> EventBus:
        bus = EventBus(persist=log.append, **options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


@pytest.fixture
def bus(make_bus: Callable[..., EventBus]) -> EventBus:
    return make_bus()


async def wait_until(condition: Callable[[], bool], message: str) -> None:
    await async_wait_until(condition, message=message, timeout=WAIT, interval=0.01)


# -- the spec's EventBus behaviours ---------------------------------------------------------


async def test_global_handler_subscription_and_emission(bus: EventBus) -> None:
    """A handler subscribed to a type receives every event of that type, on any task."""
    progress, everything = Recorder(), Recorder()
    bus.subscribe(E.PROGRESS_UPDATE, progress)
    bus.subscribe(None, everything)

    first = await bus.emit("task_a", E.PROGRESS_UPDATE, {"progress": 0.5})
    await bus.emit("task_b", "progress_update", {"progress": 0.25})
    await bus.emit("task_a", E.TASK_STARTED)
    await bus.wait_for_handlers()

    assert [(m.task_id, m.data["progress"]) for m in progress.messages] == [
        ("task_a", 0.5),
        ("task_b", 0.25),
    ]
    assert progress.messages[0] == first and first.seq == 1
    assert everything.types == ["progress_update", "progress_update", "task_started"]


async def test_task_specific_handlers(bus: EventBus) -> None:
    """A handler bound to one task sees only that task's events; async handlers work too."""
    only_a: list[WebSocketMessage] = []

    async def handler(message: WebSocketMessage) -> None:
        await asyncio.sleep(0)
        only_a.append(message)

    all_types_b = Recorder()
    bus.subscribe(E.TASK_UPDATED, handler, task_id="task_a")
    bus.subscribe("*", all_types_b, task_id="task_b")

    await bus.emit("task_a", E.TASK_UPDATED, {"changes": ["title"]})
    await bus.emit("task_b", E.TASK_UPDATED, {"changes": ["title"]})
    await bus.emit("task_a", E.TASK_STARTED)
    await bus.emit("task_b", E.TASK_PAUSED)
    await bus.wait_for_handlers()

    assert [(m.task_id, m.event_type) for m in only_a] == [("task_a", E.TASK_UPDATED)]
    assert all_types_b.types == ["task_updated", "task_paused"]
    assert {m.task_id for m in all_types_b.messages} == {"task_b"}


async def test_emit_progress_update(bus: EventBus, log: EventLog) -> None:
    """emit_progress_update persists progress, message and confidence with attribution."""
    received = Recorder()
    bus.subscribe(E.PROGRESS_UPDATE, received)

    message = await bus.emit_progress_update(
        "task_001", 0.75, "Processing documents...", 0.85, run_id="run_1", source="agent:x"
    )
    await bus.wait_for_handlers()

    assert message.event_type is E.PROGRESS_UPDATE
    assert message.data == {
        "progress": 0.75,
        "message": "Processing documents...",
        "confidence": 0.85,
    }
    assert (message.run_id, message.source, message.seq) == ("run_1", "agent:x", 1)
    assert log.events["task_001"] == [message]
    assert received.messages == [message]


async def test_emit_agent_status_change(bus: EventBus) -> None:
    """emit_agent_status_change carries agent, status and previous status, attributed."""
    message = await bus.emit_agent_status_change("task_001", "agent_7", "working", "idle")

    assert message.event_type is E.AGENT_STATUS_CHANGE
    assert message.data == {"agent_id": "agent_7", "status": "working", "previous": "idle"}
    assert message.agent_id == "agent_7"
    with pytest.raises(InvalidInputError) as caught:
        await bus.emit_agent_status_change("task_001", "agent_7", "dancing")
    assert caught.value.field == "data.status"


async def test_emit_tool_call_start_and_end(bus: EventBus) -> None:
    """Without a result emit_tool_call starts a call; with one (or an error) it ends it."""
    start = await bus.emit_tool_call("task_001", "web_scraper", {"url": "https://example.com"})
    assert start.event_type is E.TOOL_CALL_START
    call_id = start.data["tool_call_id"]
    assert isinstance(call_id, str) and call_id.startswith("call_")
    assert start.data["name"] == "web_scraper"
    assert start.data["args"] == {"url": "https://example.com"}

    end = await bus.emit_tool_call(
        "task_001",
        "web_scraper",
        {"url": "https://example.com"},
        {"status": "success"},
        tool_call_id=call_id,
        duration_ms=12.5,
    )
    assert end.event_type is E.TOOL_CALL_END
    assert end.data == {
        "tool_call_id": call_id,
        "name": "web_scraper",
        "result": {"status": "success"},
        "error": None,
        "duration_ms": 12.5,
    }
    failed = await bus.emit_tool_call("task_001", "search", {}, error="timeout")
    assert failed.event_type is E.TOOL_CALL_END and failed.data["error"] == "timeout"
    assert [start.seq, end.seq, failed.seq] == [1, 2, 3]


async def test_handler_unsubscription(bus: EventBus) -> None:
    """After unsubscribe the handler gets nothing more; a second unsubscribe returns False."""
    received = Recorder()
    subscription = bus.subscribe(E.TASK_UPDATED, received)
    assert isinstance(subscription, HandlerSubscription)

    await bus.emit_task_event("task_a", E.TASK_UPDATED)
    await bus.wait_for_handlers()
    assert bus.unsubscribe(subscription) is True
    assert subscription.active is False
    await bus.emit_task_event("task_a", E.TASK_UPDATED)
    await bus.wait_for_handlers()

    assert len(received.messages) == 1
    assert bus.unsubscribe(subscription) is False
    assert bus.get_stats()["subscriptions"]["total"] == 0


async def test_event_history_tracking_and_filtering(make_bus: Callable[..., EventBus]) -> None:
    """History filters by task, type and limit (newest last) and keeps the last 1,000 events."""
    bus = make_bus()
    for i in range(3):
        await bus.emit_progress_update("task_a", i / 10)
        await bus.emit_task_event("task_b", E.TASK_UPDATED)

    assert len(bus.get_event_history()) == 6
    assert [m.seq for m in bus.get_event_history(task_id="task_a")] == [1, 2, 3]
    assert [m.task_id for m in bus.get_event_history(event_type="task_updated")] == ["task_b"] * 3
    newest = bus.get_event_history(task_id="task_a", event_type=E.PROGRESS_UPDATE, limit=2)
    assert [m.data["progress"] for m in newest] == [0.1, 0.2]
    assert bus.get_event_history(limit=0) == []
    assert bus.get_event_history(task_id="task_none") == []

    for _ in range(1_005):
        await bus.emit_task_event("task_c", E.STEP_START, {"name": "step"})
    kept = bus.get_event_history(limit=None)
    assert len(kept) == 1_000
    assert [m.seq for m in kept] == list(range(6, 1_006))  # the 11 oldest events are gone
    assert bus.get_event_history(task_id="task_a") == []
    assert len(bus.get_event_history(task_id="task_c")) == 100  # the default limit


async def test_event_bus_statistics(bus: EventBus) -> None:
    """Stats count emitted/dispatched events, per-type totals, subscriptions and history."""
    bus.subscribe(E.PROGRESS_UPDATE, Recorder())
    bus.subscribe(E.PROGRESS_UPDATE, Recorder(), task_id="task_a")
    bus.subscribe(None, Recorder())

    await bus.emit_progress_update("task_a", 0.1)
    await bus.emit_progress_update("task_a", 0.2)
    await bus.emit_task_event("task_a", E.TASK_COMPLETED)
    await bus.wait_for_handlers()
    stats = bus.get_stats()

    assert stats["events_emitted"] == 3
    assert stats["events_dispatched"] == 3
    assert stats["events_by_type"] == {"progress_update": 2, "task_completed": 1}
    assert stats["subscriptions"] == {"total": 3, "by_type": {"progress_update": 2, "*": 1}}
    assert stats["handler_calls"] == 2 + 2 + 3
    assert stats["handler_errors"] == 0 and stats["handlers_dropped"] == 0
    assert stats["history_size"] == 3 and stats["history_capacity"] == 1_000


# -- failure isolation ------------------------------------------------------------------------


async def test_raising_handler_does_not_stop_the_others(bus: EventBus) -> None:
    """A handler that raises is logged and counted; other handlers and the emitter carry on."""
    received = Recorder()

    def broken(message: WebSocketMessage) -> None:
        raise RuntimeError("handler bug")

    async def broken_async(message: WebSocketMessage) -> None:
        raise ValueError("async handler bug")

    bus.subscribe(None, broken)
    bus.subscribe(None, broken_async)
    bus.subscribe(None, received)

    await bus.emit_task_event("task_a", E.TASK_STARTED)
    await bus.emit_task_event("task_a", E.TASK_COMPLETED)
    await bus.wait_for_handlers()

    assert received.types == ["task_started", "task_completed"]
    assert bus.get_stats()["handler_errors"] == 4


async def test_slow_handler_does_not_delay_emit(bus: EventBus) -> None:
    """emit returns, and other handlers run, while a 10-second handler is still sleeping."""
    started, finished = asyncio.Event(), asyncio.Event()
    fast_got_it = asyncio.Event()

    async def slow(message: WebSocketMessage) -> None:
        started.set()
        await asyncio.sleep(10)
        finished.set()

    bus.subscribe(None, slow)
    bus.subscribe(None, lambda message: fast_got_it.set())

    message = await bus.emit_task_event("task_a", E.TASK_STARTED)
    assert message.seq == 1
    second = await bus.emit_task_event("task_a", E.TASK_PAUSED)
    assert second.seq == 2

    async with asyncio.timeout(WAIT):
        await started.wait()
        await fast_got_it.wait()
    assert not finished.is_set()
    assert bus.get_stats()["handler_calls_pending"] >= 1


async def test_handler_timeout_is_enforced(make_bus: Callable[..., EventBus]) -> None:
    """An async handler running past handler_timeout is cancelled and counted."""
    bus = make_bus(handler_timeout=0.05)
    later = Recorder()

    async def stuck(message: WebSocketMessage) -> None:
        await asyncio.sleep(10 * WAIT)

    subscription = bus.subscribe(None, stuck)
    bus.subscribe(None, later)
    await bus.emit_task_event("task_a", E.TASK_STARTED)
    async with asyncio.timeout(WAIT):
        await bus.wait_for_handlers()

    stats = bus.get_stats()
    assert stats["handler_timeouts"] == 1 and stats["handler_errors"] == 1
    assert subscription.errors == 1
    assert later.types == ["task_started"]


async def test_full_handler_queue_drops_and_counts(make_bus: Callable[..., EventBus]) -> None:
    """A subscription that falls behind its queue size loses new calls, counted as dropped."""
    bus = make_bus(handler_queue_size=2)
    gate = asyncio.Event()
    handled: list[int] = []

    async def blocked(message: WebSocketMessage) -> None:
        await gate.wait()
        assert message.seq is not None
        handled.append(message.seq)

    subscription = bus.subscribe(None, blocked)
    for _ in range(6):
        await bus.emit_task_event("task_a", E.TASK_UPDATED)
    gate.set()
    async with asyncio.timeout(WAIT):
        await bus.wait_for_handlers()

    dropped = bus.get_stats()["handlers_dropped"]
    assert dropped >= 3  # at most one call running plus two queued
    assert subscription.dropped == dropped
    assert len(handled) + dropped == 6
    assert handled == sorted(handled)  # what was handled kept its order


async def test_invalid_data_raises_invalid_input(bus: EventBus, log: EventLog) -> None:
    """Bad data, unknown types and connection messages are refused before anything is stored."""
    with pytest.raises(InvalidInputError) as caught:
        await bus.emit_progress_update("task_a", 1.5)
    assert caught.value.field == "data.progress"
    with pytest.raises(InvalidInputError) as caught:
        await bus.emit("task_a", E.MESSAGE_DELTA, {"delta": "hi"})
    assert caught.value.field == "data.message_id"
    with pytest.raises(InvalidInputError):
        await bus.emit("task_a", "no_such_type")
    with pytest.raises(InvalidInputError):
        await bus.emit("task_a", E.HEARTBEAT)
    with pytest.raises(InvalidInputError) as caught:
        await bus.emit("task_a", E.TASK_STARTED, source="x" * 201)
    assert caught.value.field == "source"
    with pytest.raises(InvalidInputError) as caught:
        await bus.emit("task_a", E.TASK_STARTED, {"extra": object()})
    assert caught.value.field == "data.extra"  # not a JSON value
    with pytest.raises(InvalidInputError):
        bus.subscribe("no_such_type", Recorder())

    assert log.events == {}
    assert bus.get_stats()["events_emitted"] == 0


# -- dispatch, listeners, lifecycle -----------------------------------------------------------


async def test_dispatch_delivers_events_committed_elsewhere(bus: EventBus, log: EventLog) -> None:
    """dispatch records, runs handlers and feeds listeners one batch per task in seq order."""
    a = await log.append("task_a", [EventIn(event_type=E.TASK_UPDATED) for _ in range(3)])
    b = await log.append("task_b", [EventIn(event_type=E.TASK_STARTED)])
    received = Recorder()
    batches: list[list[WebSocketMessage]] = []

    async def listener(batch: list[WebSocketMessage]) -> None:
        batches.append(batch)

    bus.subscribe(None, received)
    bus.add_listener(listener)
    await bus.dispatch([a[2], b[0], a[0], a[1]])
    await bus.wait_for_handlers()

    assert batches == [a, b]
    assert [(m.task_id, m.seq) for m in received.messages] == [
        ("task_a", 1),
        ("task_a", 2),
        ("task_a", 3),
        ("task_b", 1),
    ]
    stats = bus.get_stats()
    assert (stats["events_emitted"], stats["events_dispatched"]) == (0, 4)
    with pytest.raises(ValueError, match="committed"):
        await bus.dispatch(
            [WebSocketMessage(id="evt_x", event_type=E.TASK_UPDATED, timestamp=a[0].timestamp)]
        )


async def test_failing_listener_is_isolated(bus: EventBus) -> None:
    """A listener that raises does not stop later listeners or the emitter."""
    seen: list[int | None] = []

    async def broken(batch: list[WebSocketMessage]) -> None:
        raise RuntimeError("listener bug")

    async def good(batch: list[WebSocketMessage]) -> None:
        seen.extend(m.seq for m in batch)

    bus.add_listener(broken)
    bus.add_listener(good)
    await bus.emit_task_event("task_a", E.TASK_STARTED)
    assert seen == [1]
    assert bus.get_stats()["listener_errors"] == 1
    assert bus.remove_listener(broken) is True and bus.remove_listener(broken) is False


async def test_close_cancels_workers_and_refuses_emits(make_bus: Callable[..., EventBus]) -> None:
    """close cancels running handlers cleanly; emitting afterwards is an error."""
    bus = make_bus()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(message: WebSocketMessage) -> None:
        started.set()
        try:
            await asyncio.sleep(10 * WAIT)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bus.subscribe(None, slow)
    await bus.start()
    await bus.emit_task_event("task_a", E.TASK_STARTED)
    async with asyncio.timeout(WAIT):
        await started.wait()
    await bus.close()
    await bus.close()  # harmless

    assert cancelled.is_set()
    with pytest.raises(RuntimeError, match="closed"):
        await bus.emit_task_event("task_a", E.TASK_STARTED)
    with pytest.raises(RuntimeError, match="closed"):
        await bus.start()


async def test_shared_memory_notifier_links_buses(make_bus: Callable[..., EventBus]) -> None:
    """Two buses on one MemoryNotifier both see each other's events, each once."""
    notifier = MemoryNotifier()
    one, two = make_bus(notifier=notifier), make_bus(notifier=notifier)
    await one.emit_task_event("task_a", E.TASK_STARTED)
    await two.emit_task_event("task_a", E.TASK_PAUSED)
    for bus in (one, two):
        assert [m.seq for m in bus.get_event_history()] == [1, 2]


async def test_one_process_link_is_always_up(bus: EventBus) -> None:
    """With the memory notifier nothing can be missed: the link is up, with no break."""
    await bus.emit_task_event("task_a", E.TASK_STARTED)
    assert bus.link == LinkStatus(up=True, breaks=0)


def test_exports_are_sorted_and_importable() -> None:
    """taskline.bus.__all__ is sorted, duplicate-free and every name exists."""
    names = taskline.bus.__all__
    assert names == sorted(set(names))
    for name in names:
        assert getattr(taskline.bus, name) is not None


# -- Redis --------------------------------------------------------------------------------------


@pytest.fixture
async def redis_buses(
    log: EventLog, make_bus: Callable[..., EventBus]
) -> Callable[[int], Awaitable[list[EventBus]]]:
    """Start ``n`` buses (as if in ``n`` processes) on one fresh Redis channel."""
    channel = f"taskline:test:{uuid.uuid4().hex}"

    async def start(n: int) -> list[EventBus]:
        buses = []
        for i in range(n):
            notifier = RedisNotifier(
                REDIS_URL, channel=channel, origin=f"proc{i}-{uuid.uuid4().hex[:8]}"
            )
            bus = make_bus(notifier=notifier)
            try:
                await bus.start()
            except StorageError as exc:
                unavailable(f"Redis at {REDIS_URL}", str(exc))
            buses.append(bus)
        return buses

    return start


async def test_redis_delivers_to_other_process_in_order(
    redis_buses: Callable[[int], Awaitable[list[EventBus]]],
) -> None:
    """200 events emitted on one bus reach the other's listener and handler, in seq order."""
    sender, receiver = await redis_buses(2)
    remote: list[WebSocketMessage] = []
    local: list[WebSocketMessage] = []
    handled = Recorder()

    async def on_remote(batch: list[WebSocketMessage]) -> None:
        remote.extend(batch)

    async def on_local(batch: list[WebSocketMessage]) -> None:
        local.extend(batch)

    receiver.add_listener(on_remote)
    receiver.subscribe(E.PROGRESS_UPDATE, handled, task_id="task_r")
    sender.add_listener(on_local)

    emitted = [await sender.emit_progress_update("task_r", i / 200) for i in range(200)]
    await wait_until(lambda: len(remote) >= 200, "200 events through Redis")
    async with asyncio.timeout(WAIT):
        await receiver.wait_for_handlers()

    assert [m.seq for m in remote] == list(range(1, 201))
    assert remote == emitted
    assert handled.messages == emitted
    assert receiver.get_event_history(task_id="task_r", limit=None) == emitted
    # The sender saw its own events once, directly (its Redis echo is skipped). A marker from
    # the receiver arriving after the echoes proves they were processed.
    marker = await receiver.emit_task_event("task_marker", E.TASK_STARTED)
    await wait_until(lambda: bool(local) and local[-1] == marker, "the marker from the receiver")
    assert local == [*emitted, marker]
    assert sender.get_stats()["notify_errors"] == 0


async def test_redis_subscription_recovers_after_connection_is_killed(
    redis_buses: Callable[[int], Awaitable[list[EventBus]]],
) -> None:
    """When Redis drops the listener's connection, delivery resumes after reconnecting."""
    sender, receiver = await redis_buses(2)
    received: list[WebSocketMessage] = []

    async def on_batch(batch: list[WebSocketMessage]) -> None:
        received.extend(batch)

    receiver.add_listener(on_batch)
    notifier = receiver.notifier
    assert isinstance(notifier, RedisNotifier)
    assert receiver.link == LinkStatus(up=True, breaks=0)

    admin = Redis.from_url(REDIS_URL)
    try:
        clients = await admin.client_list(_type="pubsub")
        ours = [c["id"] for c in clients if c.get("name") == f"taskline:{notifier.origin}"]
        assert ours, "the receiver's subscription is not visible in CLIENT LIST"
        for client_id in ours:
            await admin.client_kill_filter(_id=client_id)
    finally:
        await admin.aclose()

    # Events published while the link is down are lost to pub/sub (the log has them): keep
    # emitting until one gets through.
    async with asyncio.timeout(WAIT):
        while not received:
            await sender.emit_task_event("task_k", E.TASK_UPDATED)
            await asyncio.sleep(0.05)
    assert received[0].task_id == "task_k"
    # the break is counted, so a poller that looked at neither side of it still catches up
    assert receiver.link == LinkStatus(up=True, breaks=1)


async def test_redis_unreachable_is_a_storage_error() -> None:
    """start() against a closed port raises StorageError chained from the driver's error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = RedisNotifier(f"redis://127.0.0.1:{port}/0", origin="lonely", timeout=1.0)
    with pytest.raises(StorageError) as caught:
        await notifier.start()
    assert caught.value.__cause__ is not None
    with pytest.raises(RuntimeError, match="expected started"):
        await notifier.publish([])
    await notifier.close()
