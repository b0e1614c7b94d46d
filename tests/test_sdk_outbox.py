"""The SDK's sans-I/O parts, without a server: the delivery ledger, the subscription cursor,
event checks, and the value objects."""

import json
from datetime import UTC, datetime

import pytest

from taskline.domain.events import WebSocketMessage
from taskline.sdk import Backoff, Command, DeliveryOptions, InvalidEvent
from taskline.sdk._events import build_event
from taskline.sdk._outbox import Outbox
from taskline.sdk._subscription import Cursor
from taskline.sdk._wire import Dropped, websocket_url


def fill(outbox: Outbox, task_id: str, count: int, *, now: float = 0.0) -> list[str]:
    ids = []
    for n in range(count):
        event_id = f"evt_{task_id[-1]}{n}"
        outbox.add(task_id, event_id, json.dumps({"id": event_id}), now=now)
        ids.append(event_id)
    return ids


def test_batches_hold_consecutive_events_of_one_task_within_the_limits() -> None:
    """A batch stops at batch_size, at max_batch_bytes, and where the task changes."""
    outbox = Outbox(batch_size=3, max_batch_bytes=1024)
    a = fill(outbox, "task_a", 4)
    b = fill(outbox, "task_b", 1)
    batches = [outbox.next_batch() for _ in range(4)]
    assert [(x.task_id, x.event_ids) for x in batches if x] == [
        ("task_a", a[:3]),
        ("task_a", a[3:]),
        ("task_b", b),
    ]
    assert batches[3] is None
    frame = json.loads(batches[0].frame()) if batches[0] else {}
    assert frame == {
        "type": "publish",
        "batch_id": "b_1",
        "task_id": "task_a",
        "events": [{"id": i} for i in a[:3]],
    }
    big = Outbox(batch_size=500, max_batch_bytes=1024)
    for n in range(5):
        big.add("task_a", f"evt_{n}", json.dumps({"pad": "x" * 300}), now=0.0)
    sizes = []
    while (batch := big.next_batch()) is not None:
        sizes.append(len(batch.events))
    assert sizes == [2, 2, 1]


def test_acks_release_the_buffer_and_flushes_track_event_numbers() -> None:
    """pending counts unresolved events; resolved_through tells a flush when it is done."""
    outbox = Outbox(batch_size=2)
    fill(outbox, "task_a", 3)
    target = outbox.request_flush()
    first = outbox.next_batch()
    second = outbox.next_batch()
    assert first and second and outbox.in_flight == 2 and outbox.pending == 3
    assert outbox.acknowledge(second.batch_id, [3]) is second
    assert not outbox.resolved_through(target)  # the first batch is still out
    assert outbox.refuse(first.batch_id) is first
    assert outbox.resolved_through(target) and outbox.pending == 0
    assert outbox.acknowledge("b_unknown", [1]) is None
    assert second.events[0].seq == 3


def test_a_lost_connection_resends_every_unresolved_batch_first_in_order() -> None:
    """After a loss the same batches (same event ids) go again, oldest first, before any
    new batch is formed."""
    outbox = Outbox(batch_size=2)
    ids = fill(outbox, "task_a", 5)
    one, two = outbox.next_batch(), outbox.next_batch()
    assert one and two
    outbox.acknowledge(one.batch_id, [1, 2])
    assert outbox.connection_lost() == 1 and outbox.in_flight == 0
    again = outbox.next_batch()
    assert again is two and again.event_ids == ids[2:4] and again.attempts == 2
    last = outbox.next_batch()
    assert last and last.event_ids == ids[4:]


def test_send_delay_sends_at_once_when_idle_and_lingers_behind_a_batch_in_flight() -> None:
    """Nothing in flight: send now. Something in flight: wait up to linger, unless a full
    batch waits or a flush asked; never more than max_in_flight batches out."""
    outbox = Outbox(batch_size=3)
    assert outbox.send_delay(0.0, linger=0.02, max_in_flight=2) is None
    fill(outbox, "task_a", 1, now=10.0)
    assert outbox.send_delay(10.0, linger=0.02, max_in_flight=2) == 0.0
    outbox.next_batch()
    fill(outbox, "task_a", 1, now=10.0)
    assert outbox.send_delay(10.005, linger=0.02, max_in_flight=2) == pytest.approx(0.015)
    assert outbox.send_delay(10.03, linger=0.02, max_in_flight=2) == 0.0
    fill(outbox, "task_a", 2, now=10.0)
    assert outbox.send_delay(10.0, linger=0.02, max_in_flight=2) == 0.0  # a full batch
    outbox.next_batch()
    assert outbox.send_delay(10.0, linger=0.02, max_in_flight=2) is None  # window full
    outbox.connection_lost()
    assert outbox.send_delay(10.0, linger=0.02, max_in_flight=2) == 0.0  # resend at once
    fresh = Outbox()
    fill(fresh, "task_a", 1)
    fresh.next_batch()
    fill(fresh, "task_a", 1, now=5.0)
    fresh.request_flush()
    assert fresh.send_delay(5.0, linger=1.0, max_in_flight=4) == 0.0


def _message(seq: int | None, event_type: str = "custom", **data: object) -> WebSocketMessage:
    return WebSocketMessage(
        id="evt_x", seq=seq, event_type=event_type, data=data, timestamp=datetime.now(UTC)
    )


def test_the_cursor_drops_duplicates_and_refuses_holes() -> None:
    """A seen seq is dropped; a skipped seq asks for a resume; a gap moves the cursor."""
    cursor = Cursor(None)
    assert cursor.accept(_message(None, "connection_established", epoch="e1", last_seq=4))
    assert (cursor.last_seq, cursor.epoch) == (4, "e1")
    assert cursor.accept(_message(5))
    assert not cursor.accept(_message(5)) and not cursor.accept(_message(3))
    with pytest.raises(Dropped):
        cursor.accept(_message(7))
    assert cursor.last_seq == 5
    assert cursor.accept(_message(None, "gap", since=5, first_available_seq=20))
    assert cursor.accept(_message(20)) and cursor.last_seq == 20
    resumed = Cursor(10)
    assert resumed.accept(_message(None, "connection_established", epoch="e1", last_seq=30))
    assert resumed.last_seq == 10


def test_events_are_checked_before_they_are_queued() -> None:
    """Unknown, connection-only and server-only types, bad data and non-JSON are refused."""
    event = build_event("progress_update", {"progress": 0.5}, run_id="run_1", agent_id="agent_a")
    body = json.loads(event.text)
    assert body["id"] == event.event_id and event.event_id.startswith("evt_")
    assert (body["run_id"], body["agent_id"], body["data"]) == (
        "run_1",
        "agent_a",
        {"progress": 0.5},
    )
    for kind, data in [
        ("no_such_type", {}),
        ("gap", {}),
        ("task_deleted", {}),
        ("progress_update", {"progress": 2}),
        ("custom", {"name": "x", "value": object()}),
        ("custom", {"name": "x", "value": float("nan")}),
    ]:
        with pytest.raises(InvalidEvent):
            build_event(kind, data)
    with pytest.raises(InvalidEvent, match="bytes"):
        build_event("custom", {"name": "x", "value": "y" * 2000}, max_bytes=1000)


def test_value_objects_refuse_nonsense_and_backoff_grows_to_its_cap() -> None:
    """Backoff delays grow by factor up to maximum, jittered downwards; bad limits raise."""
    delays = Backoff(initial=0.1, maximum=0.4, factor=2, jitter=0).delays()
    assert [next(delays) for _ in range(4)] == [0.1, 0.2, 0.4, 0.4]
    jittered = Backoff(initial=1, maximum=1, jitter=0.5).delays()
    assert all(0.5 <= next(jittered) <= 1 for _ in range(50))
    for bad in [
        lambda: Backoff(initial=0),
        lambda: Backoff(factor=0.5),
        lambda: Backoff(jitter=2),
        lambda: DeliveryOptions(batch_size=1001),
        lambda: DeliveryOptions(buffer_size=0),
        lambda: DeliveryOptions(flush_timeout=0),
    ]:
        with pytest.raises(ValueError):
            bad()
    assert DeliveryOptions() == DeliveryOptions()


def test_websocket_urls_keep_the_prefix_and_switch_the_scheme() -> None:
    """http becomes ws, https wss; a mount path is kept; None parameters are left out."""
    assert (
        websocket_url("https://hub.example/taskline", "/ws/tasks/t", {"since": 3, "epoch": None})
        == "wss://hub.example/taskline/ws/tasks/t?since=3"
    )
    assert (
        websocket_url("http://127.0.0.1:8000", "/ws/agents/a") == "ws://127.0.0.1:8000/ws/agents/a"
    )


def test_commands_are_read_from_their_frames() -> None:
    """message and run payloads are kept; missing fields do not break reading."""
    message = Command.from_wire(
        {
            "type": "command",
            "id": "cmd_1",
            "command": "message",
            "task_id": "task_a",
            "message": {"id": "msg_1", "author": "ana", "content": "hi", "created_at": "bad"},
        }
    )
    assert message.message is not None
    assert (message.message.author, message.message.content, message.message.created_at) == (
        "ana",
        "hi",
        None,
    )
    run = Command.from_wire({"command": "run", "task_id": "task_a", "run": {"runId": "r1"}})
    assert (run.command, run.run, run.message) == ("run", {"runId": "r1"}, None)
