"""The delivery ledger: which events wait, which batches are out, what is acknowledged.

Sans-I/O: no sockets, no clocks, no ``await``. The agent connection feeds it events, asks it
what to send and when, and tells it about acknowledgements and lost connections; the rules
that make delivery exactly-once and ordered live here and are tested without a server.

Rules:
- An event belongs to the ledger from :meth:`Outbox.add` until its batch is acknowledged or
  refused; :attr:`Outbox.pending` counts those events (the bounded buffer's fill level).
- Batches hold consecutive events of one task, so sending batches in creation order keeps
  every task's events in the order they were added.
- After a lost connection every unresolved batch is re-sent, in creation order and with the
  same event ids, before any new batch is formed (the server stores each id once, so a batch
  that had been stored before the loss only gets its seqs back).
"""

import json
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Batch", "Outbox", "PendingEvent"]

_FRAME_OVERHEAD = 200  # the publish frame around the events: type, batch_id, task_id


@dataclass(slots=True)
class PendingEvent:
    """One encoded event waiting for its acknowledgement."""

    number: int  #: position in the order events were added (1, 2, 3, ...)
    task_id: str
    event_id: str
    text: str  #: the event as ASCII JSON (so ``len(text)`` is its size in bytes)
    added_at: float  #: the caller's clock, for the linger deadline
    seq: int | None = None  #: given by the acknowledgement


@dataclass(slots=True)
class Batch:
    """Consecutive events of one task, sent as one ``publish`` frame."""

    batch_id: str
    task_id: str
    events: list[PendingEvent]
    sent: bool = False
    attempts: int = 0

    def frame(self) -> str:
        """The ``publish`` frame (events are pre-encoded, so this is string joining only)."""
        return (
            f'{{"type":"publish","batch_id":"{self.batch_id}","task_id":{json.dumps(self.task_id)},'
            f'"events":[{",".join(e.text for e in self.events)}]}}'
        )

    @property
    def event_ids(self) -> list[str]:
        return [e.event_id for e in self.events]


@dataclass(slots=True)
class Outbox:
    """Queued events and unresolved batches of one connection.

    Args:
        batch_size: most events per batch.
        max_batch_bytes: most bytes of events per batch (a single larger event still goes
            alone; the caller refuses events over the limit before adding them).
    """

    batch_size: int = 500
    max_batch_bytes: int = 196_608
    queued: deque[PendingEvent] = field(default_factory=deque)
    batches: dict[str, Batch] = field(default_factory=dict)  #: unresolved, in creation order
    pending: int = 0  #: events added and not yet acknowledged or refused
    in_flight: int = 0  #: batches sent on the current connection and not yet answered
    added: int = 0  #: events ever added (the number of the newest one)
    flush_through: int = 0  #: send without lingering up to this event number
    _batch_counter: int = 0

    # --- filling ------------------------------------------------------------------------------

    def add(self, task_id: str, event_id: str, text: str, *, now: float) -> PendingEvent:
        """Queue one encoded event; return its ledger entry."""
        self.added += 1
        event = PendingEvent(self.added, task_id, event_id, text, now)
        self.queued.append(event)
        self.pending += 1
        return event

    def request_flush(self) -> int:
        """Ask for every event added so far to leave without lingering; return the number of
        the newest one (a flush is done when :meth:`resolved_through` says so)."""
        self.flush_through = self.added
        return self.added

    # --- sending ------------------------------------------------------------------------------

    def send_delay(self, now: float, *, linger: float, max_in_flight: int) -> float | None:
        """When the next batch should go: 0 for now, seconds to wait, or None (nothing to
        send, or ``max_in_flight`` batches are already out).

        An event leaves at once when nothing is in flight (lowest latency), when a full batch
        is waiting, or when a flush asked for it; otherwise it lingers up to ``linger``
        seconds so that the events produced meanwhile share its batch.
        """
        if self.in_flight >= max_in_flight:
            return None
        if any(not batch.sent for batch in self.batches.values()):
            return 0.0
        if not self.queued:
            return None
        first = self.queued[0]
        if (
            self.in_flight == 0
            or len(self.queued) >= self.batch_size
            or first.number <= self.flush_through
        ):
            return 0.0
        return max(0.0, first.added_at + linger - now)

    def next_batch(self) -> Batch | None:
        """Return the batch to send next and mark it sent: the oldest unsent one (a resend),
        else a new one from the queue; None when there is nothing to send."""
        batch = next((b for b in self.batches.values() if not b.sent), None)
        if batch is None:
            batch = self._form()
            if batch is None:
                return None
        batch.sent = True
        batch.attempts += 1
        self.in_flight += 1
        return batch

    def _form(self) -> Batch | None:
        if not self.queued:
            return None
        task_id = self.queued[0].task_id
        events: list[PendingEvent] = []
        size = _FRAME_OVERHEAD
        while self.queued and len(events) < self.batch_size:
            event = self.queued[0]
            if event.task_id != task_id:
                break
            if events and size + len(event.text) + 1 > self.max_batch_bytes:
                break
            size += len(event.text) + 1
            events.append(self.queued.popleft())
        self._batch_counter += 1
        batch = Batch(f"b_{self._batch_counter}", task_id, events)
        self.batches[batch.batch_id] = batch
        return batch

    # --- answers ------------------------------------------------------------------------------

    def acknowledge(self, batch_id: str, seqs: list[int]) -> Batch | None:
        """Resolve a batch the server stored; give its events their seqs.

        Returns None for an unknown batch id (an answer to a batch already resolved).
        """
        batch = self._resolve(batch_id)
        if batch is not None:
            for event, seq in zip(batch.events, seqs, strict=False):
                event.seq = seq
        return batch

    def refuse(self, batch_id: str) -> Batch | None:
        """Resolve a batch the server refused (nothing of it is stored)."""
        return self._resolve(batch_id)

    def _resolve(self, batch_id: str) -> Batch | None:
        batch = self.batches.pop(batch_id, None)
        if batch is None:
            return None
        if batch.sent:
            self.in_flight -= 1
        self.pending -= len(batch.events)
        return batch

    def connection_lost(self) -> int:
        """Mark every unresolved batch for resending; return how many there are."""
        for batch in self.batches.values():
            batch.sent = False
        self.in_flight = 0
        return len(self.batches)

    # --- progress -----------------------------------------------------------------------------

    def resolved_through(self, number: int) -> bool:
        """True when every event up to ``number`` is acknowledged or refused."""
        oldest = self.oldest_unresolved()
        return oldest is None or oldest > number

    def oldest_unresolved(self) -> int | None:
        """The number of the oldest event still waiting, or None."""
        candidates = [b.events[0].number for b in self.batches.values() if b.events]
        if self.queued:
            candidates.append(self.queued[0].number)
        return min(candidates) if candidates else None
