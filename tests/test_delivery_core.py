"""The delivery core alone (no server, no sockets, no database): who gets which seq."""

from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskline.realtime.delivery import FIRST_READ, Delivery, DeliveryState, Verdict


def frames(seqs: range | list[int]) -> list[str]:
    return [f"e{seq}" for seq in seqs]


def offer(delivery: Delivery[str], seqs: range | list[int], size: int = 10) -> Verdict:
    seqs = list(seqs)
    return delivery.offer(frames(seqs), seqs, [size] * len(seqs))


def replay(delivery: Delivery[str], log: list[int], limit: int, size: int = 10) -> Verdict:
    """What the I/O shell does: read up to ``limit`` events after ``last_seq`` from ``log``."""
    chunk = [seq for seq in log if seq > delivery.last_seq][:limit]
    return delivery.replayed(frames(chunk), chunk, [size] * len(chunk))


def live(after: int = 0, max_bytes: int = 1000) -> Delivery[str]:
    delivery: Delivery[str] = Delivery(max_bytes=max_bytes)
    assert delivery.begin(after, after) == Verdict.LIVE
    return delivery


def test_live_events_are_queued_in_order_and_duplicates_skipped() -> None:
    """The next seq is queued, an old one is skipped, and the cursor follows."""
    delivery = live(after=3)
    assert offer(delivery, [4, 5]) == Verdict.OK
    assert offer(delivery, [5, 4, 6]) == Verdict.OK
    assert delivery.take() == frames([4, 5, 6])
    assert delivery.last_seq == 6 and delivery.pending_bytes == 0


def test_a_jump_switches_to_the_log_and_back() -> None:
    """Seq 7 after 5: the core asks for the log, holds 7, and goes live once 6 is read."""
    delivery = live(after=5)
    assert offer(delivery, [7]) == Verdict.READ_LOG
    assert delivery.state == DeliveryState.REPLAYING and delivery.catch_ups == 1
    assert offer(delivery, [8]) == Verdict.OK  # held meanwhile
    assert replay(delivery, [6], limit=100) == Verdict.LIVE
    assert delivery.take() == frames([6, 7, 8])
    assert offer(delivery, [9]) == Verdict.OK and delivery.take() == ["e9"]


def test_events_held_during_a_replay_are_released_once() -> None:
    """Joining with since=2 at head 5: live 6 and 7 arrive during the replay; each seq once."""
    delivery: Delivery[str] = Delivery(max_bytes=1000)
    assert offer(delivery, [5, 6]) == Verdict.OK  # offered before the head was read: held
    assert delivery.begin(2, 5) == Verdict.READ_LOG
    assert offer(delivery, [7]) == Verdict.OK
    assert replay(delivery, [1, 2, 3, 4, 5, 6], limit=100) == Verdict.LIVE
    assert delivery.take() == frames(range(3, 8))


def test_a_subscriber_at_the_head_goes_live_without_reading() -> None:
    """since == head: nothing to read; held events that follow on are released at once."""
    delivery: Delivery[str] = Delivery(max_bytes=1000)
    offer(delivery, [10, 11])
    assert delivery.begin(10, 10) == Verdict.LIVE
    assert delivery.take() == ["e11"]


def test_a_held_event_past_a_hole_needs_another_read() -> None:
    """A short read that leaves a hole before the held events reads again."""
    delivery: Delivery[str] = Delivery(max_bytes=1000)
    offer(delivery, [9])
    assert delivery.begin(0, 5) == Verdict.READ_LOG
    assert replay(delivery, [1, 2, 3, 4, 5], limit=100) == Verdict.READ_LOG  # 6..8 missing
    assert replay(delivery, list(range(1, 10)), limit=100) == Verdict.LIVE
    assert delivery.take() == frames(range(1, 10))


def test_a_full_outbox_falls_back_to_the_log_instead_of_growing() -> None:
    """Past the byte bound live events are not queued; the subscriber reads them later from
    the log at the pace it drains, and nothing it had is dropped or repeated."""
    delivery = live(max_bytes=100)
    assert offer(delivery, range(1, 11)) == Verdict.OK  # 100 bytes: full
    assert offer(delivery, [11, 12]) == Verdict.READ_LOG
    assert delivery.pending_bytes == 100 and not delivery.has_room()
    assert delivery.take() == frames(range(1, 11))
    assert delivery.has_room()
    log = list(range(1, 21))
    offer(delivery, range(13, 21))
    verdicts = []
    while delivery.state == DeliveryState.REPLAYING:
        verdicts.append(replay(delivery, log, limit=delivery.read_limit()))
        assert delivery.pending_bytes <= 100
        received = delivery.take()
        assert received  # progress at every read
    assert verdicts[-1] == Verdict.LIVE
    assert delivery.last_seq == 20 and delivery.peak_bytes <= 100


def test_read_limit_follows_the_event_size() -> None:
    """Reads ask for about half the bound's worth of events at the mean size seen."""
    delivery = live(max_bytes=10_000)
    assert delivery.read_limit() == FIRST_READ
    delivery.offer(["x"], [1], [1000])
    assert delivery.read_limit() == 5
    delivery.take()
    delivery.offer(["y"], [2], [100_000])
    assert delivery.read_limit() == 1


def test_one_entry_larger_than_the_bound_still_goes_out() -> None:
    """A single event over the bound is queued into an empty outbox (else it never would)."""
    delivery = live(max_bytes=100)
    assert delivery.offer(["big"], [1], [500]) == Verdict.OK
    assert delivery.take() == ["big"]


def test_too_many_held_events_are_dropped_and_read_again() -> None:
    """Held events beyond the byte budget are dropped; the log supplies them."""
    delivery: Delivery[str] = Delivery(max_bytes=50)
    assert delivery.begin(0, 1) == Verdict.READ_LOG
    offer(delivery, range(2, 12))  # 100 bytes: more than can be held
    assert replay(delivery, [1], limit=10) == Verdict.READ_LOG  # head is 11
    delivery.take()
    log = list(range(1, 12))
    taken = []
    while delivery.state == DeliveryState.REPLAYING:
        replay(delivery, log, limit=3)
        taken += delivery.take()
    assert taken == frames(range(2, 12)) and delivery.last_seq == 11


def test_notices_bypass_seqs_and_overflow_only_at_twice_the_bound() -> None:
    """Connection messages are queued in any state; past twice the bound the verdict is
    to close."""
    delivery = live(max_bytes=100)
    assert delivery.notice("hello", 150) == Verdict.OK
    assert delivery.notice("more", 50) == Verdict.OK
    assert delivery.notice("too much", 1) == Verdict.CLOSE
    assert delivery.take() == ["hello", "more"]


def test_batch_chunks_follow_on_or_fall_back() -> None:
    """A chunk that follows on exactly is one entry; otherwise the caller offers events."""
    delivery = live()
    assert delivery.offer_chunk("e1,e2,e3", 1, 3, 30) == Verdict.OK
    assert delivery.offer_chunk("e5,e6", 5, 6, 20) is None
    assert delivery.offer_chunk("e3,e4", 3, 4, 20) is None
    assert delivery.take() == ["e1,e2,e3"] and delivery.last_seq == 3


def test_a_board_subscriber_that_falls_behind_is_told_once() -> None:
    """Past the bound a board subscriber drops events, gets BEHIND once, then takes again."""
    delivery: Delivery[str] = Delivery(max_bytes=20, board=True)
    delivery.begin_board()
    assert delivery.offer_board("a", 10) == Verdict.OK
    assert delivery.offer_board("b", 10) == Verdict.OK
    assert delivery.offer_board("c", 10) == Verdict.BEHIND
    assert delivery.offer_board("d", 10) == Verdict.OK  # dropped, not announced again
    assert delivery.take() == ["a", "b"]
    assert delivery.offer_board("e", 10) == Verdict.OK and delivery.take() == ["e"]


def test_illegal_moves_raise_and_closed_takes_nothing() -> None:
    """The lifecycle refuses illegal moves; a closed subscriber ignores everything."""
    delivery = live()
    with pytest.raises(RuntimeError, match="cannot go from live to connecting"):
        delivery.move_to(DeliveryState.CONNECTING)
    delivery.close()
    assert offer(delivery, [1]) == Verdict.OK and delivery.notice("x", 1) == Verdict.OK
    assert len(delivery) == 0


Commit = tuple[Literal["commit"], int]
Dispatch = tuple[Literal["dispatch"], int, bool, bool]
Drain = tuple[Literal["drain"]]
Read = tuple[Literal["read"], int]

ACTIONS = st.one_of(
    st.tuples(st.just("commit"), st.integers(1, 5)),
    st.tuples(st.just("dispatch"), st.integers(1, 8), st.booleans(), st.booleans()),
    st.tuples(st.just("drain")),
    st.tuples(st.just("read"), st.integers(0, 3)),
)


@settings(max_examples=400, deadline=None)
@given(
    max_bytes=st.sampled_from([30, 100, 1000]),
    before=st.lists(ACTIONS, max_size=10),
    since_fraction=st.floats(0, 1),
    after=st.lists(ACTIONS, max_size=120),
)
def test_any_interleaving_delivers_each_seq_once_in_order(
    max_bytes: int,
    before: list[tuple[Any, ...]],
    since_fraction: float,
    after: list[tuple[Any, ...]],
) -> None:
    """Any interleaving of commits, dispatches (late, out of order, repeated), draining and
    reads from the log of any size, around a connect with any ``since``: what the subscriber
    takes is since+1..N, each once, in order, and it ends live."""
    delivery: Delivery[str] = Delivery(max_bytes=max_bytes)
    log: list[int] = []
    undelivered: list[int] = []  # committed, not yet dispatched to the subscriber
    taken: list[str] = []

    def run(action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "commit":
            first = len(log) + 1
            batch = list(range(first, first + action[1]))
            log.extend(batch)
            undelivered.extend(batch)
        elif kind == "dispatch" and undelivered:
            count, shuffle, twice = action[1], action[2], action[3]
            picked = undelivered[:count]
            del undelivered[:count]
            if shuffle:
                picked.reverse()
            assert offer(delivery, picked) in {Verdict.OK, Verdict.READ_LOG}
            if twice:
                offer(delivery, picked)  # the same batch again (two processes, say)
        elif kind == "drain":
            taken.extend(delivery.take())
        elif kind == "read" and delivery.state == DeliveryState.REPLAYING and delivery.has_room():
            replay(delivery, log, limit=action[1] or delivery.read_limit())

    for action in before:
        run(action)
    since = int(since_fraction * len(log))
    delivery.begin(since, len(log))
    for action in after:
        run(action)
    offer(delivery, undelivered)  # quiesce: everything dispatched, drained, caught up
    for _ in range(10_000):
        taken.extend(delivery.take())
        if delivery.state != DeliveryState.REPLAYING:
            break
        replay(delivery, log, limit=delivery.read_limit())
    taken.extend(delivery.take())
    assert delivery.state == DeliveryState.LIVE
    assert taken == frames(range(since + 1, len(log) + 1))
    assert delivery.peak_bytes <= max_bytes
