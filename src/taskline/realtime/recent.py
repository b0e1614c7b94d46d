"""The newest committed events of each task, kept in memory with their encoded frames, so a
subscriber that catches up (after falling behind, or reconnecting with ``since``) usually
reads them here instead of from the database, and shares the frames the fan-out built.

Only what the bus delivered is kept, and only as one contiguous run of seqs per task: a batch
that does not follow on starts the run again, so a read served from here never skips a seq.
Memory is bounded: ``task_bytes`` per task (oldest events dropped first) and ``total_bytes``
over all tasks (least recently written task dropped first). A deleted task is forgotten.
"""

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskline.domain.events import WebSocketEventType, WebSocketMessage

__all__ = ["RecentEvents"]


@dataclass(slots=True)
class _Run:
    """Contiguous events ``first_seq .. first_seq + len - 1`` of one task."""

    first_seq: int
    messages: list[WebSocketMessage] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    bytes: int = 0

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.messages) - 1


class RecentEvents:
    """Per-task runs of the newest events (see the module docstring).

    Args:
        task_bytes: bytes of frames kept per task at most.
        total_bytes: bytes of frames kept over all tasks at most.
    """

    def __init__(self, *, task_bytes: int, total_bytes: int) -> None:
        self.task_bytes = task_bytes
        self.total_bytes = total_bytes
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def bytes(self) -> int:
        return self._bytes

    def add(
        self,
        task_id: str,
        messages: Sequence[WebSocketMessage],
        frames: Sequence[str],
        sizes: Sequence[int],
    ) -> None:
        """Keep a committed batch of one task (seqs ascending, as dispatched)."""
        if not messages or self.total_bytes <= 0:
            return
        if messages[-1].event_type == WebSocketEventType.TASK_DELETED:
            self.forget(task_id)
            return
        run = self._runs.get(task_id)
        for message, frame, size in zip(messages, frames, sizes, strict=True):
            seq = message.seq or 0
            if run is not None and seq <= run.last_seq:
                continue  # seen already, or older than the run: nothing to add
            if run is None or seq != run.last_seq + 1:  # a hole: start the run again here
                self.forget(task_id)
                run = self._runs[task_id] = _Run(seq)
            run.messages.append(message)
            run.frames.append(frame)
            run.sizes.append(size)
            run.bytes += size
            self._bytes += size
        if run is None:
            return
        self._runs.move_to_end(task_id)
        self._trim(run)
        while self._bytes > self.total_bytes and len(self._runs) > 1:
            _, oldest = self._runs.popitem(last=False)
            self._bytes -= oldest.bytes

    def after(
        self, task_id: str, seq: int, limit: int
    ) -> tuple[list[WebSocketMessage], list[str], list[int]] | None:
        """Up to ``limit`` events following ``seq``, or None when ``seq + 1`` is not here
        (older than what is kept, or nothing kept): read the log then."""
        run = self._runs.get(task_id)
        if run is None or not run.first_seq <= seq + 1 <= run.last_seq:
            self.misses += 1
            return None
        self.hits += 1
        start = seq + 1 - run.first_seq
        end = start + limit
        return run.messages[start:end], run.frames[start:end], run.sizes[start:end]

    def forget(self, task_id: str) -> None:
        run = self._runs.pop(task_id, None)
        if run is not None:
            self._bytes -= run.bytes

    def _trim(self, run: _Run) -> None:
        """Drop the run's oldest events while it is over ``task_bytes`` (keep at least one)."""
        drop = 0
        freed = 0
        while run.bytes - freed > self.task_bytes and drop < len(run.sizes) - 1:
            freed += run.sizes[drop]
            drop += 1
        if drop:
            del run.messages[:drop], run.frames[:drop], run.sizes[:drop]
            run.first_seq += drop
            run.bytes -= freed
            self._bytes -= freed
