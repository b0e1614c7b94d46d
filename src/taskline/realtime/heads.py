"""Where each task's log stands, for connecting subscribers: looked up in batches, and
remembered from what the bus delivers.

Connecting needs two facts: the task exists, and its log's head (first and last seq). A
connect storm (every viewer coming back after a restart) would cost one read transaction
per connection; here the lookups of every connect waiting at the same moment share one
statement. Heads are also remembered (bounded, least recently used dropped) and moved on by
every committed batch the bus delivers, so a viewer resuming at the head reads nothing at all.

Remembered heads are only used where they cannot mislead: not at all when the log is trimmed
(retention moves ``first_seq`` without a dispatch), and a cursor ahead of the remembered head
is looked up afresh (another process may have committed more than has reached this one). A
remembered head behind the truth is harmless: a subscriber is registered before its head is
read, so what it has not been told yet reaches it live.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Sequence

from taskline.domain.errors import NotFoundError
from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.store.database import Database
from taskline.store.events import EventLog, LogHead

__all__ = ["LogHeads"]


class LogHeads:
    """Batched, remembered log heads (see the module docstring).

    Args:
        remember: how many tasks' heads to keep (0: look every head up).
    """

    def __init__(self, database: Database, *, remember: int = 10_000) -> None:
        self.database = database
        self.remember = remember
        self._known: OrderedDict[str, LogHead] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[LogHead]] = {}
        self._batch: asyncio.Task[None] | None = None
        # tasks being looked up -> the newest seq dispatched meanwhile (the read may miss it)
        self._reading: dict[str, int] = {}
        self.lookups = 0  #: statements run
        self.hits = 0  #: heads answered from memory

    async def head(self, task_id: str, *, since: int | None = None) -> LogHead:
        """The task's log head; :class:`NotFoundError` if there is no such task.

        ``since``: the subscriber's cursor; a remembered head behind it is looked up again.
        """
        known = self._known.get(task_id)
        if known is not None and (since is None or since <= known.last_seq):
            self._known.move_to_end(task_id)
            self.hits += 1
            return LogHead(known.first_seq, known.last_seq)
        future = self._waiting.get(task_id)
        if future is None:
            future = self._waiting[task_id] = asyncio.get_running_loop().create_future()
            if self._batch is None:
                self._batch = asyncio.get_running_loop().create_task(self._look_up())
        return await asyncio.shield(future)

    def committed(self, messages: Sequence[WebSocketMessage]) -> None:
        """Move remembered heads on with a committed batch (forget deleted tasks)."""
        for message in messages:
            task_id = message.task_id
            if task_id is None or message.seq is None:
                continue
            if task_id in self._reading:
                self._reading[task_id] = max(self._reading[task_id], message.seq)
            if message.event_type == WebSocketEventType.TASK_DELETED:
                self._known.pop(task_id, None)
                continue
            known = self._known.get(task_id)
            if known is not None and message.seq > known.last_seq:
                known.last_seq = message.seq

    async def _look_up(self) -> None:
        """Answer every waiting lookup with one statement (repeated while more arrive)."""
        await asyncio.sleep(0)  # let the connects of this moment join the batch
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                self._reading = dict.fromkeys(waiting, 0)
                try:
                    async with self.database.read() as session:
                        heads = await EventLog(session).heads(list(waiting))
                    self.lookups += 1
                except Exception as exc:
                    for future in waiting.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for task_id, future in waiting.items():
                    head = heads.get(task_id)
                    if future.done():
                        continue
                    if head is None:
                        future.set_exception(NotFoundError("task", task_id))
                        continue
                    head.last_seq = max(head.last_seq, self._reading.get(task_id, 0))
                    self._keep(task_id, head)
                    future.set_result(LogHead(head.first_seq, head.last_seq))
        finally:
            self._batch = None
            self._reading = {}

    def _keep(self, task_id: str, head: LogHead) -> None:
        if not self.remember:
            return
        self._known[task_id] = head
        self._known.move_to_end(task_id)
        while len(self._known) > self.remember:
            self._known.popitem(last=False)
