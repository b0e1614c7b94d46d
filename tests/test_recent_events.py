"""The in-memory run of each task's newest events (no server, no database)."""

from datetime import UTC, datetime

from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.realtime.recent import RecentEvents


def message(seq: int, kind: WebSocketEventType = WebSocketEventType.CUSTOM) -> WebSocketMessage:
    return WebSocketMessage(
        id=f"evt_{seq}",
        seq=seq,
        task_id="task_a",
        event_type=kind,
        data={},
        timestamp=datetime(2026, 12, 1, tzinfo=UTC),
    )


def add(recent: RecentEvents, seqs: list[int], size: int = 10) -> None:
    messages = [message(seq) for seq in seqs]
    recent.add("task_a", messages, [f"f{seq}" for seq in seqs], [size] * len(seqs))


def seqs_after(recent: RecentEvents, seq: int, limit: int = 100) -> list[int] | None:
    found = recent.after("task_a", seq, limit)
    return None if found is None else [m.seq or 0 for m in found[0]]


def test_contiguous_batches_are_served_after_any_kept_seq() -> None:
    """Events following a seq come back in order, limited; older seqs are a miss."""
    recent = RecentEvents(task_bytes=1000, total_bytes=1000)
    add(recent, [5, 6])
    add(recent, [7, 8, 9])
    assert seqs_after(recent, 4) == [5, 6, 7, 8, 9]
    assert seqs_after(recent, 6, limit=2) == [7, 8]
    assert seqs_after(recent, 3) is None  # 4 is not here: read the log
    assert seqs_after(recent, 9) is None  # nothing after the newest
    assert recent.after("task_a", 6, 1) == ([message(7)], ["f7"], [10])


def test_a_hole_starts_the_run_again_and_repeats_are_ignored() -> None:
    """A batch that does not follow on starts a new run; a batch seen already changes
    nothing; so no answer ever skips a seq."""
    recent = RecentEvents(task_bytes=1000, total_bytes=1000)
    add(recent, [1, 2])
    add(recent, [2])
    add(recent, [4, 5])  # 3 was dispatched later, or elsewhere
    assert seqs_after(recent, 1) is None
    assert seqs_after(recent, 3) == [4, 5]
    add(recent, [3])  # late: older than the run
    assert seqs_after(recent, 3) == [4, 5]


def test_memory_is_bounded_per_task_and_in_total() -> None:
    """Past task_bytes the oldest events go; past total_bytes the least recent task goes."""
    recent = RecentEvents(task_bytes=30, total_bytes=50)
    add(recent, [1, 2, 3, 4, 5])
    assert seqs_after(recent, 2) == [3, 4, 5] and recent.bytes == 30
    other = [message(n) for n in (1, 2, 3)]
    recent.add("task_b", other, ["b1", "b2", "b3"], [10, 10, 10])
    assert recent.after("task_a", 2, 10) is None  # task_a was dropped to fit task_b
    assert recent.bytes == 30 and len(recent) == 1


def test_a_deleted_task_is_forgotten_and_zero_keeps_nothing() -> None:
    """task_deleted drops the task's run; a total of 0 bytes keeps nothing at all."""
    recent = RecentEvents(task_bytes=100, total_bytes=100)
    add(recent, [1, 2])
    recent.add("task_a", [message(3, WebSocketEventType.TASK_DELETED)], ["f3"], [10])
    assert len(recent) == 0 and recent.bytes == 0
    off = RecentEvents(task_bytes=100, total_bytes=0)
    add(off, [1])
    assert len(off) == 0
