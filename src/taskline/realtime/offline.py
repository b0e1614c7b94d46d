"""Personal messages kept for clients that are offline, bounded in size and time."""

from collections import deque
from dataclasses import dataclass, field

__all__ = ["OfflineQueues", "QueuedMessages"]


@dataclass(slots=True)
class _Queue:
    messages: deque[str]
    dropped: int = 0
    offline_since: float | None = None


@dataclass(frozen=True, slots=True)
class QueuedMessages:
    """What a returning client gets: its queued frames, how many were dropped, or expiry."""

    frames: list[str] = field(default_factory=list)
    dropped: int = 0
    expired: bool = False


class OfflineQueues:
    """Per-client queues of encoded personal messages.

    Each queue holds at most ``size`` messages; when full the oldest is dropped and counted.
    A queue whose client has been offline longer than ``ttl`` seconds is discarded, and the
    client is told so when it returns (``expired``), rather than getting nothing silently.
    """

    def __init__(self, *, size: int = 100, ttl: float = 86_400.0) -> None:
        self.size = size
        self.ttl = ttl
        self._queues: dict[str, _Queue] = {}
        self._expired: set[str] = set()

    def push(self, client_id: str, frame: str, *, now: float) -> None:
        queue = self._queues.get(client_id)
        if queue is None:
            queue = self._queues[client_id] = _Queue(deque(), offline_since=now)
        if len(queue.messages) >= self.size:
            queue.messages.popleft()
            queue.dropped += 1
        queue.messages.append(frame)

    def went_offline(self, client_id: str, *, now: float) -> None:
        """Start the expiry clock of the client's queue, if it has one (a queue is made by
        the first message for an offline client, its clock started then)."""
        queue = self._queues.get(client_id)
        if queue is not None:
            queue.offline_since = now

    def take(self, client_id: str, *, now: float) -> QueuedMessages:
        """Remove and return what is queued for a client that is back (only this client's
        queue is looked at: expiring the others is :meth:`expire`'s job)."""
        queue = self._queues.get(client_id)
        since = queue.offline_since if queue is not None else None
        if queue is not None and since is not None and now - since > self.ttl:
            del self._queues[client_id]
            if queue.messages:
                self._expired.add(client_id)
        if client_id in self._expired:
            self._expired.discard(client_id)
            return QueuedMessages(expired=True)
        queue = self._queues.pop(client_id, None)
        if queue is None:
            return QueuedMessages()
        return QueuedMessages(frames=list(queue.messages), dropped=queue.dropped)

    def expire(self, *, now: float) -> int:
        """Discard queues offline for longer than ``ttl``; return how many went."""
        gone = [
            client_id
            for client_id, queue in self._queues.items()
            if queue.offline_since is not None and now - queue.offline_since > self.ttl
        ]
        for client_id in gone:
            if self._queues.pop(client_id).messages:
                self._expired.add(client_id)
        return len(gone)

    def depth(self, client_id: str) -> int:
        queue = self._queues.get(client_id)
        return len(queue.messages) if queue else 0

    def stats(self) -> dict[str, int]:
        return {
            "clients": len(self._queues),
            "messages": sum(len(q.messages) for q in self._queues.values()),
            "dropped": sum(q.dropped for q in self._queues.values()),
        }
