"""One subscriber of a task's stream (or of the board): who it is, its delivery core, and the
waiting its connection's I/O does on it.

The rules of what it receives are in :class:`~taskline.realtime.delivery.Delivery`; this class
adds what only a live connection has: identity, counters, how its outbox is drained (an
``on_ready`` callback for a direct channel; otherwise a reader — a writer task, or code that
follows the task — awaits :meth:`next_items`), the pacing of a catch-up
(:meth:`wait_for_room`), and since when frames wait that nobody takes (``blocked_since``,
which the write watchdog reads).
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from taskline.domain.events import WebSocketMessage
from taskline.realtime.delivery import Delivery, DeliveryState, Verdict

__all__ = ["Pending", "Subscriber", "SubscriberState", "frame_size"]

#: What an outbox holds: a ready JSON frame, or (for a reader that wants them, ``pairs``) the
#: envelope (None for a frame without one: a queued personal message) with its frame.
Pending = str | tuple[WebSocketMessage | None, str]


class Marker(Protocol):
    """What marks a direct-channel connection for the next write (the flusher)."""

    def mark(self, client_id: str) -> None: ...


#: The subscriber's lifecycle (the delivery core's states).
SubscriberState = DeliveryState


def frame_size(frame: str) -> int:
    """Bytes of a frame's UTF-8 encoding (cheap for ASCII, which JSON frames usually are)."""
    return len(frame) if frame.isascii() else len(frame.encode())


class Subscriber:
    """Delivery state of one connection to one task (or to the board when ``task_id`` is None).

    Args:
        max_bytes: the outbox bound (see :class:`~taskline.realtime.delivery.Delivery`).
        pairs: queue ``(envelope, frame)`` pairs instead of frames (for readers that format
            or interpret what they get: SSE, AG-UI).
        flusher: marks the connection for a write each time the outbox stops being empty
            (a direct channel's flush); None when a reader drains it with :meth:`next_items`.
    """

    __slots__ = (
        "_flusher",
        "_ready",
        "_room",
        "batch",
        "blocked_since",
        "client_id",
        "close_reason",
        "connected_at",
        "delivery",
        "last_seen",
        "messages_sent",
        "pairs",
        "remote_address",
        "task_id",
        "user_agent",
    )

    def __init__(
        self,
        client_id: str,
        task_id: str | None,
        *,
        max_bytes: int,
        batch: bool = False,
        user_agent: str | None = None,
        remote_address: str | None = None,
        pairs: bool = False,
        flusher: "Marker | None" = None,
    ) -> None:
        self.client_id = client_id
        self.task_id = task_id
        self.delivery: Delivery[Pending] = Delivery(max_bytes=max_bytes, board=task_id is None)
        self.batch = batch
        self.pairs = pairs
        self.connected_at = time.time()
        self.last_seen = time.monotonic()
        self.messages_sent = 0
        self.user_agent = user_agent
        self.remote_address = remote_address
        self.close_reason: str | None = None
        #: monotonic time since when frames wait and the connection takes none (0: not blocked)
        self.blocked_since = 0.0
        self._flusher = flusher
        self._ready: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None

    @property
    def state(self) -> DeliveryState:
        return self.delivery.state

    @property
    def last_seq(self) -> int:
        """The seq of the last task event queued for this connection."""
        return self.delivery.last_seq

    # --- feeding (each wakes the drain when the outbox stops being empty) -------------------

    def pending(self, message: WebSocketMessage | None, frame: str) -> Pending:
        """What to queue for ``frame``: the frame itself, or with its envelope (``pairs``)."""
        return (message, frame) if self.pairs else frame

    def notice(self, item: Pending, size: int) -> Verdict:
        empty = not self.delivery
        return self._fed(empty, self.delivery.notice(item, size))

    def offer(self, items: Sequence[Pending], seqs: Sequence[int], sizes: Sequence[int]) -> Verdict:
        empty = not self.delivery
        return self._fed(empty, self.delivery.offer(items, seqs, sizes))

    def offer_chunk(self, chunk: str, first_seq: int, last_seq: int, size: int) -> Verdict | None:
        empty = not self.delivery
        verdict = self.delivery.offer_chunk(chunk, first_seq, last_seq, size)
        return None if verdict is None else self._fed(empty, verdict)

    def offer_board(self, item: Pending, size: int) -> Verdict:
        empty = not self.delivery
        return self._fed(empty, self.delivery.offer_board(item, size))

    def replayed(
        self, items: Sequence[Pending], seqs: Sequence[int], sizes: Sequence[int]
    ) -> Verdict:
        empty = not self.delivery
        return self._fed(empty, self.delivery.replayed(items, seqs, sizes))

    def release(self, after: int, head: int) -> Verdict:
        """Start delivery after ``after`` (see :meth:`Delivery.begin`)."""
        empty = not self.delivery
        return self._fed(empty, self.delivery.begin(after, head))

    # --- draining ---------------------------------------------------------------------------

    def ready(self) -> None:
        """The connection can take frames again (its send buffer drained): write them."""
        if self._flusher is not None:
            self._flusher.mark(self.client_id)

    def take(self) -> list[Pending]:
        """Everything queued (oldest first); wakes a catch-up waiting for room."""
        self.blocked_since = 0.0
        items = self.delivery.take()
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)
        return items

    async def next_items(self) -> list[Pending]:
        """Wait for queued items and take them all; an empty list once closed and empty."""
        while not self.delivery:
            if self.delivery.state == DeliveryState.CLOSED:
                return []
            self._ready = asyncio.get_running_loop().create_future()
            try:
                await self._ready
            finally:
                self._ready = None
        return self.take()

    async def wait_for_room(self) -> None:
        """Wait until a read from the log may be queued, or the subscriber is closed."""
        delivery = self.delivery
        while not delivery.has_room() and delivery.state != DeliveryState.CLOSED:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def close(self) -> None:
        """Take nothing more and wake whoever waits."""
        self.delivery.close()
        for future in (self._ready, self._room):
            if future is not None and not future.done():
                future.set_result(None)

    # --- internals --------------------------------------------------------------------------

    def _fed(self, was_empty: bool, verdict: Verdict) -> Verdict:
        """Wake the drain if the outbox has just stopped being empty; with no reader waiting,
        the frames wait from now on (``blocked_since``)."""
        if was_empty and self.delivery:
            if self._flusher is not None:
                self._flusher.mark(self.client_id)
            elif self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            elif not self.blocked_since:
                self.blocked_since = time.monotonic()
        return verdict
