"""The delivery core of one subscriber: which seqs it gets, in what order, and when it reads
the log instead of taking live events. No I/O here: envelopes go in, decisions come out.

The contract (design.md; README "Delivery"):

- A task's events carry a gapless ``seq``. A subscriber *is at* ``last_seq``: it queues
  ``last_seq + 1`` next and skips anything at or below ``last_seq`` (a duplicate). On a jump
  (a seq it cannot queue yet) it stops taking live events and *catches up* from the log.
- Catching up (after connecting with ``since``, after a jump, or when its outbox is full) the
  subscriber remembers the newest seq known to be committed (``head``: the log's head when it
  connected, or the newest seq offered) and holds live events while they fit in its byte
  budget (beyond it they are dropped: they are in the log). Each read from the log goes
  through :meth:`Delivery.replayed`; once the reads and the held events leave nothing missing
  up to ``head``, the held events are queued and it is live again (anything newer has not been
  offered yet, and will be, live).
  Seqs only go up, so nothing is queued twice; the log has everything, so nothing is lost.
- The outbox is bounded in bytes (``max_bytes``): no event, live, read or held, is queued past
  it. A live event that would pass it is not queued: the subscriber catches up from the log
  instead, at the pace its connection drains (the I/O shell reads again once
  :meth:`Delivery.has_room`; what a read brings beyond the bound is read again later). A
  reader that is merely slow is never cut off; closing one that has stopped is the shell's job
  (a write timeout). One entry larger than the bound is still queued into an empty outbox.
- Notices (connection messages: personal messages, replies, heartbeats) are queued outside
  the seq order; only when they alone pile up to twice the bound is the verdict to close.
- A board subscriber (events of every task, no single cursor) cannot catch up from one log:
  past the bound its events are dropped and the verdict is :attr:`Verdict.BEHIND` once, so the
  shell can tell the client to reload; it takes events again once it has room.

Lifecycle: ``connecting → replaying → live → closed`` (``live → replaying`` on a catch-up); an
illegal move raises ``RuntimeError("... cannot go from X to Y")``.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Generic, TypeVar

__all__ = ["Delivery", "DeliveryState", "Verdict"]

Item = TypeVar("Item")


class DeliveryState(StrEnum):
    CONNECTING = "connecting"  #: registered; nothing decided yet
    REPLAYING = "replaying"  #: reading the log (catching up); live events are held or dropped
    LIVE = "live"  #: taking live events in seq order
    CLOSED = "closed"  #: takes nothing more


class Verdict(StrEnum):
    """What the I/O shell must do after feeding the core."""

    OK = "ok"  #: nothing
    READ_LOG = "read_log"  #: read the log after ``last_seq`` (once there is room)
    LIVE = "live"  #: caught up: live again
    BEHIND = "behind"  #: a board subscriber dropped events: tell it to reload
    CLOSE = "close"  #: notices alone overflowed: close the connection (4008)


_ALLOWED = {
    DeliveryState.CONNECTING: {DeliveryState.REPLAYING, DeliveryState.LIVE, DeliveryState.CLOSED},
    DeliveryState.REPLAYING: {DeliveryState.LIVE, DeliveryState.CLOSED},
    DeliveryState.LIVE: {DeliveryState.REPLAYING, DeliveryState.CLOSED},
    DeliveryState.CLOSED: set(),
}

#: Events read from the log per query at most, whatever their size.
MAX_READ = 1000
#: Events asked for by the first read, before any event's size is known.
FIRST_READ = 64


class Delivery(Generic[Item]):
    """Delivery state of one subscriber: cursor, byte-bounded outbox, held events.

    Args:
        max_bytes: the outbox's bound (see the module docstring for what happens past it).
        board: a board subscriber (many tasks, no cursor, no catch-up).

    Items are opaque to the core (a frame, or what the shell formats later); each comes with
    its size in bytes and, for task events, its seq.
    """

    __slots__ = (
        "_behind",
        "_bytes",
        "_held",
        "_held_bytes",
        "_items",
        "_mean_size",
        "board",
        "catch_ups",
        "head",
        "last_seq",
        "max_bytes",
        "peak_bytes",
        "state",
    )

    def __init__(self, *, max_bytes: int, board: bool = False) -> None:
        self.max_bytes = max_bytes
        self.board = board
        self.state = DeliveryState.CONNECTING
        self.last_seq = 0  #: seq of the last task event queued
        self.head = 0  #: the newest seq known to be committed
        self.catch_ups = 0  #: times this subscriber fell back to the log while live
        self.peak_bytes = 0  #: the most bytes ever pending at once
        self._items: list[Item] = []
        self._bytes = 0
        # (seq, item, size) held while connecting or replaying; None: too many, dropped
        self._held: list[tuple[int, Item, int]] | None = [] if not board else None
        self._held_bytes = 0
        self._mean_size = 0.0  # running mean of event sizes, to size reads from the log
        self._behind = False

    # --- inspection -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pending_bytes(self) -> int:
        """Bytes queued and not yet taken by the connection."""
        return self._bytes

    def has_room(self) -> bool:
        """True when a read from the log may be queued (at most half the bound pending)."""
        return self._bytes <= self.max_bytes // 2

    def read_limit(self) -> int:
        """How many events the next read from the log should ask for: about half the bound's
        worth at the mean event size seen so far (at least 1, at most :data:`MAX_READ`;
        :data:`FIRST_READ` before any size is known)."""
        if self._mean_size <= 0:
            return FIRST_READ
        return max(1, min(MAX_READ, int(self.max_bytes / 2 / self._mean_size)))

    # --- lifecycle --------------------------------------------------------------------------

    def move_to(self, state: DeliveryState) -> None:
        """Change state; an illegal change raises ``RuntimeError``."""
        if state not in _ALLOWED[self.state]:
            raise RuntimeError(f"delivery cannot go from {self.state} to {state}")
        self.state = state

    def begin(self, after: int, head: int) -> Verdict:
        """Start from ``after`` on a log whose head was ``head`` when read.

        Events offered since the subscriber was created (registered before the head was read,
        so none committed after that read is missed) are held meanwhile. Returns
        :attr:`Verdict.LIVE` when nothing is missing, else :attr:`Verdict.READ_LOG`.
        """
        self.last_seq = after
        if head > self.head:
            self.head = head
        self.move_to(DeliveryState.REPLAYING)
        return self._release_held()

    def begin_board(self) -> None:
        """Start a board subscriber (live at once)."""
        self._held = None
        self.move_to(DeliveryState.LIVE)

    def close(self) -> None:
        """Take nothing more; what is queued stays for the shell to flush or drop."""
        if self.state != DeliveryState.CLOSED:
            self.move_to(DeliveryState.CLOSED)
        self._held = None

    # --- feeding ----------------------------------------------------------------------------

    def notice(self, item: Item, size: int) -> Verdict:
        """Queue a connection message outside the seq order."""
        if self.state == DeliveryState.CLOSED:
            return Verdict.OK
        if self._items and self._bytes + size > 2 * self.max_bytes:
            return Verdict.CLOSE
        self._push(item, size)
        return Verdict.OK

    def offer(self, items: Sequence[Item], seqs: Sequence[int], sizes: Sequence[int]) -> Verdict:
        """Offer live task events (in the order committed; duplicates and jumps allowed)."""
        state = self.state
        if state == DeliveryState.LIVE:
            for item, seq, size in zip(items, seqs, sizes, strict=True):
                if seq <= self.last_seq:
                    continue
                self._learn(seq, size)
                if seq != self.last_seq + 1 or (
                    self._items and self._bytes + size > self.max_bytes
                ):
                    return self._fall_behind(items, seqs, sizes)
                self._push(item, size)
                self.last_seq = self.head = seq
            return Verdict.OK
        if state != DeliveryState.CLOSED:  # connecting or replaying
            self._hold(items, seqs, sizes)
        return Verdict.OK

    def offer_chunk(self, item: Item, first_seq: int, last_seq: int, size: int) -> Verdict | None:
        """Offer events ``first_seq..last_seq`` already joined into one item (batch mode).

        Returns None when the chunk does not follow on exactly or would pass the bound (the
        caller then offers the events one by one, which skips duplicates and finds jumps).
        """
        if (
            self.state != DeliveryState.LIVE
            or first_seq != self.last_seq + 1
            or (self._items and self._bytes + size > self.max_bytes)
        ):
            return None
        self._learn(last_seq, size / (last_seq - first_seq + 1))
        self._push(item, size)
        self.last_seq = self.head = last_seq
        return Verdict.OK

    def offer_board(self, item: Item, size: int) -> Verdict:
        """Offer one event to a board subscriber."""
        if self.state != DeliveryState.LIVE:
            return Verdict.OK
        if self._items and self._bytes + size > self.max_bytes:
            if self._behind:
                return Verdict.OK
            self._behind = True
            return Verdict.BEHIND
        self._behind = False
        self._push(item, size)
        return Verdict.OK

    def replayed(self, items: Sequence[Item], seqs: Sequence[int], sizes: Sequence[int]) -> Verdict:
        """Queue events read from the log after ``last_seq`` (in seq order).

        Returns :attr:`Verdict.LIVE` once nothing up to ``head`` is missing (held events that
        follow on are queued first), else :attr:`Verdict.READ_LOG`. Events committed after
        ``head`` need no read: they have not been offered yet, and will be, live.
        """
        if self.state != DeliveryState.REPLAYING:
            return Verdict.OK
        for item, seq, size in zip(items, seqs, sizes, strict=True):
            if seq <= self.last_seq:
                continue
            self._learn(seq, size)
            if self._items and self._bytes + size > self.max_bytes:
                return Verdict.READ_LOG  # the rest is read again once there is room
            self._push(item, size)
            self.last_seq = seq
        return self._release_held()

    def take(self) -> list[Item]:
        """Remove and return everything queued (oldest first)."""
        items, self._items = self._items, []
        self._bytes = 0
        return items

    # --- internals --------------------------------------------------------------------------

    def _push(self, item: Item, size: int) -> None:
        self._items.append(item)
        self._bytes += size
        if self._bytes > self.peak_bytes:
            self.peak_bytes = self._bytes

    def _learn(self, seq: int, size: float) -> None:
        if seq > self.head:
            self.head = seq
        mean = self._mean_size
        self._mean_size = size if mean <= 0 else mean + (size - mean) / 16

    def _fall_behind(
        self, items: Sequence[Item], seqs: Sequence[int], sizes: Sequence[int]
    ) -> Verdict:
        """Stop taking live events; hold the rest of this offer and read the log."""
        self.catch_ups += 1
        self.move_to(DeliveryState.REPLAYING)
        self._held = []
        self._held_bytes = 0
        self._hold(items, seqs, sizes)
        return Verdict.READ_LOG

    def _hold(self, items: Sequence[Item], seqs: Sequence[int], sizes: Sequence[int]) -> None:
        held = self._held
        for item, seq, size in zip(items, seqs, sizes, strict=True):
            if seq > self.head:
                self.head = seq
            if held is None or seq <= self.last_seq:
                continue
            if self._held_bytes + size > self.max_bytes:
                held = self._held = None  # too much to hold: the log has them
                continue
            held.append((seq, item, size))
            self._held_bytes += size

    def _release_held(self) -> Verdict:
        """Queue held events that follow on; live if nothing up to ``head`` is missing."""
        held = sorted(self._held or (), key=lambda entry: entry[0])
        for seq, item, size in held:
            if seq <= self.last_seq:
                continue
            if seq != self.last_seq + 1 or (self._items and self._bytes + size > self.max_bytes):
                break
            self._push(item, size)
            self.last_seq = seq
        if self.last_seq < self.head:
            self._held = [entry for entry in held if entry[0] > self.last_seq]
            self._held_bytes = sum(entry[2] for entry in self._held)
            return Verdict.READ_LOG
        self._held = None
        self._held_bytes = 0
        self.move_to(DeliveryState.LIVE)
        return Verdict.LIVE
