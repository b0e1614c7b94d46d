"""The one way a change reaches the log: one write transaction, then one dispatch.

:meth:`Writes.change` opens a write transaction and yields a :class:`Change`; whatever the
block records (:meth:`Change.record`, :meth:`Change.start`) is committed when the block exits
cleanly and then handed to the bus once, in one batch. An exception rolls everything back
and nothing is dispatched: nothing is delivered that was not committed.

Publishing (agents' events, the hot path) goes through :class:`GroupCommit` instead:
concurrent publishes share one transaction and one commit, each keeps its own
acknowledgement, order and idempotency (see its docstring).
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskline.bus import EventBus
from taskline.domain.actors import Actor
from taskline.domain.effects import DEFAULT_MAX_STATE_BYTES, is_read_free
from taskline.domain.errors import TasklineError
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.service.recorder import Publish, record_events, record_read_free_group, start_log
from taskline.store.database import Database

__all__ = ["Change", "GroupCommit", "Writes"]

logger = logging.getLogger("taskline.service")


class Change:
    """One write transaction in progress: its session and the events it has recorded."""

    __slots__ = ("events", "keep_last", "max_state_bytes", "session")

    def __init__(
        self,
        session: AsyncSession,
        *,
        keep_last: int | None,
        max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    ) -> None:
        self.session = session
        self.keep_last = keep_last
        self.max_state_bytes = max_state_bytes
        self.events: list[WebSocketMessage] = []

    async def record(
        self,
        task_id: str,
        events: Sequence[EventIn],
        *,
        actor: Actor,
        source: str | None = None,
        apply: bool = True,
    ) -> list[WebSocketMessage]:
        """Record events on a task's log (see :func:`~taskline.service.recorder.record_events`)."""
        followups: list[WebSocketMessage] = []
        committed = await record_events(
            self.session,
            task_id,
            events,
            actor=actor,
            source=source,
            apply=apply,
            keep_last=self.keep_last,
            max_state_bytes=self.max_state_bytes,
            followups=followups,
        )
        self.events.extend(committed)
        self.events.extend(followups)
        return committed

    async def start(
        self, task_id: str, first: EventIn, *, actor: Actor, source: str
    ) -> WebSocketMessage:
        """Start a new task's log with ``first`` (its ``task_created``)."""
        created = await start_log(self.session, task_id, first, actor=actor, source=source)
        self.events.append(created)
        return created


class Writes:
    """Transactions that record events, each dispatched once after its commit.

    Args:
        keep_last: retention; after each append all but the newest ``keep_last`` events of
            the task are trimmed (None keeps everything).
        max_state_bytes: the shared state's size limit (see ``record_events``).
    """

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        *,
        keep_last: int | None,
        max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    ) -> None:
        self.database = database
        self.bus = bus
        self.keep_last = keep_last
        self.max_state_bytes = max_state_bytes

    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[Change]:
        """A write transaction; its recorded events go to the bus after the commit."""
        async with self.database.write() as session:
            change = Change(session, keep_last=self.keep_last, max_state_bytes=self.max_state_bytes)
            yield change
        if change.events:
            await self.bus.dispatch(change.events)


@dataclass(slots=True)
class _Publish:
    task_id: str
    events: Sequence[EventIn]
    actor: Actor
    source: str | None
    dispatch: bool
    future: asyncio.Future[list[WebSocketMessage]] = field(repr=False)


class GroupCommit:
    """Publishes that arrive together are stored in one transaction and one commit.

    Each :meth:`publish` call waits for its own outcome: its events with their seqs, or its
    own error (a refused event refuses only its request). Requests are applied in the order
    they arrived, each seeing the effects of the ones before it, exactly as if they had run
    one after another; consecutive read-free requests (of any tasks) are stored together in
    a fixed few statements (:func:`~taskline.service.recorder.record_read_free_group`). A
    request whose error is a database error (not a refused event) makes the group fall back
    to one transaction per request, so only the request that caused it fails.

    Args:
        workers: groups committed at once (requests are spread by task, so a task's
            publishes keep their order); SQLite serialises writers anyway: use 1 there.
        max_group: requests per transaction at most.
        max_state_bytes: the shared state's size limit (see ``record_events``).
    """

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        *,
        keep_last: int | None,
        workers: int = 1,
        max_group: int = 256,
        max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    ) -> None:
        self.database = database
        self.bus = bus
        self.keep_last = keep_last
        self.max_state_bytes = max_state_bytes
        self.max_group = max_group
        self._queues: list[deque[_Publish]] = [deque() for _ in range(max(1, workers))]
        self._wakers: list[asyncio.Event | None] = [None] * len(self._queues)
        self._workers: list[asyncio.Task[None] | None] = [None] * len(self._queues)
        self._closed = False
        self.groups = 0
        self.requests = 0

    async def publish(
        self,
        task_id: str,
        events: Sequence[EventIn],
        *,
        actor: Actor,
        source: str | None = None,
        dispatch: bool = True,
    ) -> list[WebSocketMessage]:
        """Store ``events`` all or nothing (with the others of its group); return them with
        their seqs. With ``dispatch`` they go to the bus after the commit.

        Raises what :func:`~taskline.service.recorder.record_events` raises for this request.
        """
        if self._closed:
            raise RuntimeError("GroupCommit: closed")
        future: asyncio.Future[list[WebSocketMessage]] = asyncio.get_running_loop().create_future()
        shard = hash(task_id) % len(self._queues)
        self._queues[shard].append(_Publish(task_id, events, actor, source, dispatch, future))
        self._wake(shard)
        return await future

    async def close(self) -> None:
        """Stop the workers; requests still queued fail with ``RuntimeError``."""
        self._closed = True
        for worker in self._workers:
            if worker is not None:
                worker.cancel()
        await asyncio.gather(*(w for w in self._workers if w is not None), return_exceptions=True)
        for queue in self._queues:
            while queue:
                request = queue.popleft()
                if not request.future.done():
                    request.future.set_exception(RuntimeError("the server is shutting down"))

    # --- the workers ------------------------------------------------------------------------

    def _wake(self, shard: int) -> None:
        waker = self._wakers[shard]
        if waker is None:
            waker = self._wakers[shard] = asyncio.Event()
        waker.set()
        worker = self._workers[shard]
        if worker is None or worker.done():
            self._workers[shard] = asyncio.create_task(
                self._work(shard), name=f"taskline-group-commit-{shard}"
            )

    async def _work(self, shard: int) -> None:
        queue = self._queues[shard]
        waker = self._wakers[shard]
        assert waker is not None
        while True:
            await waker.wait()
            waker.clear()
            while queue:
                group = [queue.popleft() for _ in range(min(self.max_group, len(queue)))]
                try:
                    await self._commit(group)
                except asyncio.CancelledError:
                    self._settle(group, [RuntimeError("the server is shutting down")] * len(group))
                    raise

    async def _commit(self, group: list[_Publish]) -> None:
        self.groups += 1
        self.requests += len(group)
        try:
            stored = await self._store(group)
        except Exception as exc:
            if len(group) == 1:
                self._settle(group, [exc])
                return
            logger.warning("a group of %d publishes failed; retrying one by one", len(group))
            for request in group:
                await self._commit([request])
            return
        outcomes, followups = stored
        self._settle(group, outcomes)
        committed = [
            m
            for r, o in zip(group, outcomes, strict=True)
            if r.dispatch and isinstance(o, list)
            for m in o
        ]
        committed.extend(followups)  # what the server logged because of them: always sent
        if committed:
            try:
                await self.bus.dispatch(committed)
            except Exception:
                logger.exception("dispatching %d committed events failed", len(committed))

    async def _store(
        self, group: list[_Publish]
    ) -> tuple[list[list[WebSocketMessage] | BaseException], list[WebSocketMessage]]:
        """One transaction for the group; a refused request gets its error, the rest commit.
        Also returns the events the server logged because of them (see ``record_events``)."""
        outcomes: list[list[WebSocketMessage] | BaseException] = []
        followups: list[WebSocketMessage] = []
        async with self.database.write() as session:
            index = 0
            while index < len(group):
                run = _run_of(group, index)
                outcomes.extend(await self._store_run(session, run, followups))
                index += len(run)
        return outcomes, followups

    async def _store_run(
        self, session: AsyncSession, run: list[_Publish], followups: list[WebSocketMessage]
    ) -> list[list[WebSocketMessage] | BaseException]:
        if len(run) > 1:  # read-free publishes: a fixed few statements for all of them
            publishes = [Publish(r.task_id, r.events, r.actor, r.source) for r in run]
            outcomes: list[list[WebSocketMessage] | BaseException] = []
            outcomes.extend(
                await record_read_free_group(session, publishes, keep_last=self.keep_last)
            )
            return outcomes
        request = run[0]
        try:
            return [
                await record_events(
                    session,
                    request.task_id,
                    request.events,
                    actor=request.actor,
                    source=request.source,
                    keep_last=self.keep_last,
                    max_state_bytes=self.max_state_bytes,
                    followups=followups,
                )
            ]
        except TasklineError as exc:  # refused before it wrote anything
            return [exc]

    @staticmethod
    def _settle(group: list[_Publish], outcomes: Sequence[Any]) -> None:
        for request, outcome in zip(group, outcomes, strict=True):
            if request.future.done():
                continue
            if isinstance(outcome, BaseException):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)


def _run_of(group: list[_Publish], index: int) -> list[_Publish]:
    """The requests from ``index`` on that can be stored together: consecutive read-free
    publishes (of any tasks; at least the first request)."""
    run = [group[index]]
    if is_read_free(group[index].events):
        for request in group[index + 1 :]:
            if not is_read_free(request.events):
                break
            run.append(request)
    return run
