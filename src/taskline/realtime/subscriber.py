"""One subscriber of a task's stream: its cursor, its outbox and its lifecycle.

States: ``connecting → replaying → live → closed``. While replaying (or filling a gap), live
events are held in ``pending`` and released in seq order afterwards, so the switch from log
to live loses nothing and repeats nothing.
"""

import time
from collections.abc import Callable, Sequence
from enum import StrEnum

from taskline.domain.events import WebSocketMessage
from taskline.realtime.outbox import Outbox

__all__ = ["Formatter", "Subscriber", "SubscriberState"]

#: Turns a shared JSON frame into this transport's frame (e.g. an SSE record with ``id:``);
#: it receives the envelope (None for connection messages) and its JSON text.
Formatter = Callable[[WebSocketMessage | None, str], str]


class SubscriberState(StrEnum):
    CONNECTING = "connecting"
    REPLAYING = "replaying"
    LIVE = "live"
    CLOSED = "closed"


_ALLOWED = {
    SubscriberState.CONNECTING: {SubscriberState.REPLAYING, SubscriberState.CLOSED},
    SubscriberState.REPLAYING: {SubscriberState.LIVE, SubscriberState.CLOSED},
    SubscriberState.LIVE: {SubscriberState.REPLAYING, SubscriberState.CLOSED},
    SubscriberState.CLOSED: set(),
}


class Subscriber:
    """Delivery state of one connection to one task (or to the board when ``task_id`` is None).

    ``last_seq`` is the seq of the last task event queued to the outbox.
    """

    __slots__ = (
        "batch",
        "client_id",
        "close_reason",
        "connected_at",
        "formatter",
        "last_seen",
        "last_seq",
        "messages_sent",
        "outbox",
        "pending",
        "remote_address",
        "state",
        "task_id",
        "user_agent",
    )

    def __init__(
        self,
        client_id: str,
        task_id: str | None,
        *,
        outbox_size: int,
        batch: bool = False,
        user_agent: str | None = None,
        remote_address: str | None = None,
        formatter: Formatter | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """``on_ready``: see :class:`Outbox` (None: a writer task drains the outbox)."""
        self.client_id = client_id
        self.task_id = task_id
        self.outbox = Outbox(outbox_size, on_ready)
        self.batch = batch
        self.state = SubscriberState.CONNECTING
        self.last_seq = 0
        self.pending: list[WebSocketMessage] = []
        self.connected_at = time.time()
        self.last_seen = time.monotonic()
        self.messages_sent = 0
        self.user_agent = user_agent
        self.remote_address = remote_address
        self.close_reason: str | None = None
        self.formatter = formatter

    def move_to(self, state: SubscriberState) -> None:
        """Change state; an illegal change raises ``RuntimeError("expected ..., got ...")``."""
        if state not in _ALLOWED[self.state]:
            raise RuntimeError(
                f"subscriber {self.client_id}: cannot go from {self.state} to {state}"
            )
        self.state = state

    def offer(self, messages: Sequence[WebSocketMessage], frames: Sequence[str]) -> bool | None:
        """Queue live ``messages`` (with their pre-encoded ``frames``) in seq order.

        Returns True when all were queued or skipped as duplicates, None when a gap was found
        (the caller must fill it from the log), False when the outbox overflowed.
        Messages without a seq (not from the log) are queued as they come.
        """
        if self.state == SubscriberState.REPLAYING:
            self.pending.extend(messages)
            return True
        if self.state != SubscriberState.LIVE:
            return True
        for message, frame in zip(messages, frames, strict=True):
            if message.seq is not None:
                if message.seq <= self.last_seq:
                    continue
                if message.seq != self.last_seq + 1:
                    return None
                self.last_seq = message.seq
            if not self.outbox.put(frame):
                return False
        return True

    def offer_chunk(self, first_seq: int, last_seq: int, chunk: str) -> bool | None:
        """Queue events ``first_seq..last_seq`` already joined as one chunk (batch mode).

        Returns True when queued, False when the outbox overflowed, None when the chunk does
        not follow on exactly (the caller falls back to :meth:`offer`, which skips duplicates
        and finds gaps).
        """
        if self.state != SubscriberState.LIVE or first_seq != self.last_seq + 1:
            return None
        if not self.outbox.put(chunk):
            return False
        self.last_seq = last_seq
        return True

    def queue(self, frame: str, seq: int | None = None) -> bool:
        """Queue one frame during replay; advances ``last_seq`` for log events."""
        if seq is not None:
            if seq <= self.last_seq:
                return True
            self.last_seq = seq
        return self.outbox.put(frame)
