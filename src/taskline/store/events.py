"""The durable, ordered, per-task event log: it stores and reads, and knows nothing of what
an event means (that is :mod:`taskline.domain.effects`, applied by the application layer).

Rules (design.md):
- ``seq`` is gapless per task and commit-ordered: it is allocated by moving the task's
  ``task_logs`` row on inside the appending transaction, which locks that row until commit
  (PostgreSQL row lock; SQLite serialises writers), so no two transactions interleave seqs.
- Every writer locks a task's row before its log row (:meth:`EventLog.lock` takes both in one
  statement, in that order).
- Event ids are unique across tasks (:meth:`EventLog.stored` finds a re-sent one).

Publishing is the hottest write path, so this module speaks SQLAlchemy Core on the session's
connection (plain selects, inserts and updates of the columns involved) rather than loading
ORM objects; the rows it touches are never left in the session's identity map.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Integer,
    Row,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskline.domain.errors import ConflictError, NotFoundError
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.domain.ids import new_id
from taskline.domain.json_bounds import readable
from taskline.domain.leases import LeaseState
from taskline.store.tables import EVENTS, TASK_LOGS, TASKS, EventRow, LogMetaRow

__all__ = [
    "EventLog",
    "LockedLog",
    "LockedTask",
    "LogHead",
    "TaskState",
    "event_row",
    "lease_state",
    "update_many",
]

#: The largest seq the ``seq`` columns hold (``Integer``: 32 bits on PostgreSQL).
_LARGEST_SEQ = 2**31 - 1

logger = logging.getLogger("taskline.store")

# The statements of the append path, built once (SQLAlchemy caches their compiled form).
# ``FOR UPDATE`` takes PostgreSQL row locks; SQLite leaves it out (its writers are serialised).
_LOCK_TASK = (
    select(TASKS.c.status, TASKS.c.started_at)
    .where(TASKS.c.id == bindparam("task_id"))
    .with_for_update()
)
_LOG = TASK_LOGS.c
_LOG_HEAD = select(_LOG.last_seq, _LOG.first_seq, _LOG.state_version).where(
    _LOG.task_id == bindparam("task_id")
)
_LOCK_LOG = _LOG_HEAD.with_for_update()
_LOCK_LOG_WITH_STATE = _LOG_HEAD.add_columns(_LOG.state).with_for_update()
# Both rows in one statement; PostgreSQL locks them in FROM order (task, then log), the order
# every writer takes them in. No row: the task or its log is missing (see ``lock``).
_TASK_AND_LOG_HEAD = (
    select(TASKS.c.status, TASKS.c.started_at, *_LOG_HEAD.selected_columns)
    .join_from(TASKS, TASK_LOGS, _LOG.task_id == TASKS.c.id)
    .where(TASKS.c.id == bindparam("task_id"))
)
_LOCK_TASK_AND_LOG = _TASK_AND_LOG_HEAD.with_for_update()
_LOCK_TASK_AND_LOG_WITH_STATE = _TASK_AND_LOG_HEAD.add_columns(_LOG.state).with_for_update()
# Allocate ``count`` seqs in one statement: lock the log row, move its head, read it back.
_ALLOCATE = (
    update(TASK_LOGS)
    .where(_LOG.task_id == bindparam("where_task_id"))
    .values(last_seq=_LOG.last_seq + bindparam("count", type_=Integer))
    .returning(*_LOG_HEAD.selected_columns)
)
# The SET clause comes from the parameters given: only the columns that changed.
_UPDATE_LOG = update(TASK_LOGS).where(_LOG.task_id == bindparam("where_task_id"))
# Several tasks with their logs (the batch path of publishing), and the tasks' leases (which
# fence their agents' writes: taskline.domain.leases).
_LEASE_COLUMNS = (
    TASKS.c.status,
    TASKS.c.lease_agent_id,
    TASKS.c.lease_token,
    TASKS.c.lease_expires_at,
    TASKS.c.lease_seconds,
    TASKS.c.lease_lost_by,
)
_TASKS_AND_LOG_HEADS = select(TASKS.c.id, *_LOG_HEAD.selected_columns, *_LEASE_COLUMNS).join_from(
    TASKS, TASK_LOGS, _LOG.task_id == TASKS.c.id
)


class LogHead:
    """Where a task's log stands: ``first_seq`` retained .. ``last_seq`` written."""

    __slots__ = ("first_seq", "last_seq")

    def __init__(self, first_seq: int, last_seq: int) -> None:
        self.first_seq = first_seq
        self.last_seq = last_seq


class TaskState:
    """The shared state document of a task and its version (0 = never set)."""

    __slots__ = ("document", "version")

    def __init__(self, document: Any, version: int) -> None:
        self.document = document
        self.version = version


class LockedLog:
    """A task's ``task_logs`` row, locked by this transaction, and what the batch changes.

    ``state`` is only read when asked for (a batch with a ``state.patch``); ``changes`` holds
    the columns to write back with :meth:`EventLog.save`.
    """

    __slots__ = ("changes", "first_seq", "last_seq", "lease", "state", "state_version")

    def __init__(self, last_seq: int, first_seq: int, state_version: int, state: Any) -> None:
        self.last_seq = last_seq
        self.first_seq = first_seq
        self.state_version = state_version
        self.state = state
        self.changes: dict[str, Any] = {}
        #: the task's status and lease, when :meth:`EventLog.lock_many` read them
        self.lease: tuple[str, LeaseState] | None = None

    @classmethod
    def from_row(cls, row: Row[Any], *, with_state: bool = False) -> "LockedLog":
        """From a row holding the ``_LOG_HEAD`` columns (and ``state`` if ``with_state``)."""
        state = row.state if with_state else None
        return cls(row.last_seq, row.first_seq, row.state_version, state)


class LockedTask:
    """What :meth:`EventLog.lock` read of the locked task row: what status events need."""

    __slots__ = ("id", "started_at", "status")

    def __init__(self, task_id: str, status: str, started_at: datetime | None) -> None:
        self.id = task_id
        self.status = status
        self.started_at = started_at


class EventLog:
    """Event log operations inside one transaction (the caller owns the session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- writing (the caller applies what events mean, then stores them here) ---------------

    async def start(self, task_id: str, row: dict[str, Any]) -> WebSocketMessage:
        """Create the log of a task that has none yet, holding ``row`` (see
        :func:`event_row`, seq 1). Two Core inserts, no reads: the fast path of a new task."""
        await self.session.execute(insert(TASK_LOGS), [{**_empty_log(task_id), "last_seq": 1}])
        await self.session.execute(insert(EVENTS), [row])
        return WebSocketMessage.model_validate(row)

    async def open(self, task_id: str) -> None:
        """Create the (empty) log of a new task; a log that exists already is kept."""
        connection = await self.session.connection()
        if (await connection.execute(_LOG_HEAD, {"task_id": task_id})).first() is None:
            await connection.execute(insert(TASK_LOGS), _empty_log(task_id))

    async def lock(self, task_id: str, *, with_state: bool) -> tuple[LockedTask, LockedLog]:
        """Lock the task's row, then its log's (one statement when both exist); creates an
        empty log for a task that has none yet. ``with_state`` also reads the shared state.

        Raises:
            NotFoundError: the task does not exist.
        """
        connection = await self.session.connection()
        statement = _LOCK_TASK_AND_LOG_WITH_STATE if with_state else _LOCK_TASK_AND_LOG
        row = (await connection.execute(statement, {"task_id": task_id})).first()
        if row is None:  # no task (raises), or a task without a log yet
            found = (await connection.execute(_LOCK_TASK, {"task_id": task_id})).first()
            if found is None:
                raise NotFoundError("task", task_id)
            task = LockedTask(task_id, found.status, found.started_at)
            return task, await self.lock_log(task_id, with_state=with_state)
        log = LockedLog.from_row(row, with_state=with_state)
        return LockedTask(task_id, row.status, row.started_at), log

    async def lock_many(self, task_ids: Sequence[str]) -> dict[str, LockedLog]:
        """Lock the rows of several tasks and their logs (task rows first, in id order),
        creating empty logs for tasks that have none yet; unknown tasks are left out.
        Two statements at most (three when some logs are new)."""
        connection = await self.session.connection()
        ids = sorted(set(task_ids))
        rows = await connection.execute(
            _TASKS_AND_LOG_HEADS.where(TASKS.c.id.in_(ids)).order_by(TASKS.c.id).with_for_update()
        )
        heads: dict[str, LockedLog] = {}
        row: Any
        for row in rows:
            heads[row.id] = LockedLog.from_row(row)
            heads[row.id].lease = (row.status, lease_state(row))
        missing = [task_id for task_id in ids if task_id not in heads]
        if missing:
            found = (
                await connection.execute(
                    select(TASKS.c.id, *_LEASE_COLUMNS)
                    .where(TASKS.c.id.in_(missing))
                    .order_by(TASKS.c.id)
                    .with_for_update()
                )
            ).all()
            if found:
                await connection.execute(insert(TASK_LOGS), [_empty_log(r.id) for r in found])
                for row in found:
                    head = LockedLog(last_seq=0, first_seq=1, state_version=0, state=None)
                    head.lease = (row.status, lease_state(row))
                    heads[row.id] = head
        return heads

    async def save_many(self, logs: dict[str, LockedLog]) -> None:
        """Write back the ``changes`` of several locked logs (one statement per set of
        changed columns)."""
        await update_many(self.session, _UPDATE_LOG, "where_task_id", logs)

    async def lock_log(self, task_id: str, *, with_state: bool = False) -> LockedLog:
        """Lock the task's log row (seqs are allocated under this lock), creating an empty log
        for a task that has none yet. ``with_state`` also reads the shared state document."""
        connection = await self.session.connection()
        statement = _LOCK_LOG_WITH_STATE if with_state else _LOCK_LOG
        row = (await connection.execute(statement, {"task_id": task_id})).first()
        if row is None:
            await connection.execute(insert(TASK_LOGS), _empty_log(task_id))
            return LockedLog(last_seq=0, first_seq=1, state_version=0, state=None)
        return LockedLog.from_row(row, with_state=with_state)

    async def allocate(self, task_id: str, count: int) -> LockedLog:
        """Move the log's head ``count`` seqs on in one statement (locking the log row and
        creating the log if the task has none yet); the head is written already."""
        connection = await self.session.connection()
        params = {"where_task_id": task_id, "count": count}
        row = (await connection.execute(_ALLOCATE, params)).first()
        if row is None:
            await connection.execute(insert(TASK_LOGS), {**_empty_log(task_id), "last_seq": count})
            return LockedLog(last_seq=count, first_seq=1, state_version=0, state=None)
        return LockedLog.from_row(row)

    async def stored(self, task_id: str, ids: Sequence[str]) -> dict[str, WebSocketMessage]:
        """The stored events among ``ids``.

        Raises:
            ConflictError: one of them is another task's.
        """
        if not ids:
            return {}
        connection = await self.session.connection()
        result = await connection.execute(select(EVENTS).where(EVENTS.c.id.in_(ids)))
        found: dict[str, WebSocketMessage] = {}
        for message in _messages(result):
            if message.task_id != task_id:
                raise ConflictError(
                    f"event id {message.id!r} is already used on task {message.task_id!r}"
                )
            found[message.id] = message
        return found

    async def insert(self, rows: Sequence[dict[str, Any]]) -> list[WebSocketMessage]:
        """Store event rows (see :func:`event_row`); return their envelopes."""
        connection = await self.session.connection()
        await connection.execute(insert(EVENTS), list(rows))
        return [WebSocketMessage.model_validate(values) for values in rows]

    async def save(self, task_id: str, log: LockedLog) -> None:
        """Write back the log row's ``changes`` (head, retained range, state), if any."""
        if log.changes:
            connection = await self.session.connection()
            await connection.execute(_UPDATE_LOG, {"where_task_id": task_id, **log.changes})

    async def trim(self, task_id: str, *, keep_last: int, log: LockedLog | None = None) -> int:
        """Delete all but the newest ``keep_last`` events of a task; return how many went.

        With ``log`` (locked by the caller) the new ``first_seq`` goes into ``log.changes``
        for the caller to save; without, the log is locked and saved here (a task without a
        log gets an empty one: nothing to trim).
        """
        connection = await self.session.connection()
        locked = log if log is not None else await self.lock_log(task_id)
        first_kept = max(1, locked.last_seq - keep_last + 1)
        if first_kept <= locked.first_seq:
            return 0
        result = await connection.execute(
            delete(EVENTS).where(EVENTS.c.task_id == task_id, EVENTS.c.seq < first_kept)
        )
        locked.first_seq = first_kept
        locked.changes["first_seq"] = first_kept
        if log is None:
            await self.save(task_id, locked)
        return int(result.rowcount)

    # --- reading ----------------------------------------------------------------------------

    async def head(self, task_id: str) -> LogHead:
        """Return the log's retained range; an unknown task raises :class:`NotFoundError`.

        A task that has no log yet (seeded or imported, not changed since) has an empty one.
        """
        connection = await self.session.connection()
        statement = select(TASK_LOGS.c.first_seq, TASK_LOGS.c.last_seq).where(
            TASK_LOGS.c.task_id == task_id
        )
        row = (await connection.execute(statement)).first()
        if row is None:
            await _require_task(connection, task_id)
            return LogHead(1, 0)
        return LogHead(row.first_seq, row.last_seq)

    async def heads(self, task_ids: Sequence[str]) -> dict[str, LogHead]:
        """The retained range of each of ``task_ids`` that exists, in one statement (a task
        without a log yet has an empty one); unknown tasks are left out."""
        connection = await self.session.connection()
        statement = (
            select(TASKS.c.id, TASK_LOGS.c.first_seq, TASK_LOGS.c.last_seq)
            .outerjoin(TASK_LOGS, TASK_LOGS.c.task_id == TASKS.c.id)
            .where(TASKS.c.id.in_(list(task_ids)))
        )
        return {
            row.id: LogHead(row.first_seq or 1, row.last_seq or 0)
            for row in await connection.execute(statement)
        }

    async def read(
        self,
        task_id: str,
        *,
        since: int = 0,
        limit: int | None = None,
        types: Sequence[str] = (),
    ) -> list[WebSocketMessage]:
        """Return the task's events with ``seq > since`` in seq order.

        ``since`` may be any integer: seqs are 32-bit columns, and PostgreSQL refuses to
        compare one with a larger number (it used to be a 503), so a cursor past the largest
        seq a column holds reads what it means: nothing.
        """
        since = min(since, _LARGEST_SEQ)
        statement = (
            select(EVENTS)
            .where(EVENTS.c.task_id == task_id, EVENTS.c.seq > since)
            .order_by(EVENTS.c.seq)
        )
        if types:
            statement = statement.where(EVENTS.c.event_type.in_(list(types)))
        if limit is not None:
            statement = statement.limit(limit)
        connection = await self.session.connection()
        return _messages(await connection.execute(statement))

    async def read_after(self, cursors: Mapping[str, int], *, limit: int) -> list[WebSocketMessage]:
        """Events of several tasks past each one's cursor (``seq > cursors[task_id]``) in one
        statement, ordered by task id then seq, at most ``limit`` in all (the first tasks'
        first: read again past what came back when it is full). No cursors: nothing."""
        if not cursors:
            return []
        past = [
            and_(EVENTS.c.task_id == task_id, EVENTS.c.seq > min(since, _LARGEST_SEQ))
            for task_id, since in cursors.items()
        ]
        statement = (
            select(EVENTS).where(or_(*past)).order_by(EVENTS.c.task_id, EVENTS.c.seq).limit(limit)
        )
        connection = await self.session.connection()
        return _messages(await connection.execute(statement))

    async def recent(
        self,
        *,
        limit: int = 100,
        types: Sequence[str] = (),
        task_id: str | None = None,
        since_time: datetime | None = None,
    ) -> list[WebSocketMessage]:
        """Return the newest events across tasks (newest last)."""
        statement = select(EVENTS).order_by(EVENTS.c.timestamp.desc(), EVENTS.c.seq.desc())
        if types:
            statement = statement.where(EVENTS.c.event_type.in_(list(types)))
        if task_id:
            statement = statement.where(EVENTS.c.task_id == task_id)
        if since_time:
            statement = statement.where(EVENTS.c.timestamp > since_time)
        connection = await self.session.connection()
        rows = (await connection.execute(statement.limit(limit))).all()
        return _messages(reversed(rows))

    async def state(self, task_id: str) -> TaskState:
        """The shared state document (``{}`` and version 0 before any is set)."""
        connection = await self.session.connection()
        await _require_task(connection, task_id)
        statement = select(TASK_LOGS.c.state, TASK_LOGS.c.state_version).where(
            TASK_LOGS.c.task_id == task_id
        )
        row = (await connection.execute(statement)).first()
        if row is None:
            return TaskState({}, 0)
        return TaskState(row.state if row.state is not None else {}, row.state_version)

    async def epoch(self) -> str:
        """Return this database's log epoch (created by the migration)."""
        value = await self.session.scalar(select(LogMetaRow.value).where(LogMetaRow.key == "epoch"))
        return value or "unknown"

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(EventRow)) or 0)


def lease_state(row: Any) -> LeaseState:
    """The lease of a task from a row holding its lease columns."""
    return LeaseState(
        holder=row.lease_agent_id,
        token=row.lease_token or 0,
        expires_at=row.lease_expires_at,
        seconds=row.lease_seconds,
        lost_by=row.lease_lost_by,
    )


def event_row(
    task_id: str,
    seq: int,
    event: EventIn,
    data: dict[str, Any],
    *,
    now: datetime,
    source: str | None,
    actor: str | None,
) -> dict[str, Any]:
    """The columns of one stored event (also the fields of its :class:`WebSocketMessage`)."""
    return {
        "id": event.id or new_id("evt"),
        "task_id": task_id,
        "seq": seq,
        "event_type": event.event_type.value,
        "data": data,
        "timestamp": event.timestamp or now,
        "source": event.source or source,
        "actor": actor,
        "client_id": event.client_id,
        "run_id": event.run_id,
        "parent_run_id": event.parent_run_id,
        "agent_id": event.agent_id,
    }


async def _require_task(connection: AsyncConnection, task_id: str) -> None:
    """Raise :class:`NotFoundError` unless the task exists."""
    statement = select(TASKS.c.id).where(TASKS.c.id == task_id)
    if (await connection.execute(statement)).first() is None:
        raise NotFoundError("task", task_id)


async def update_many(
    session: AsyncSession, statement: Any, key: str, changes: dict[str, Any]
) -> None:
    """Run ``statement`` (an UPDATE whose WHERE binds ``key``) for each row's ``changes``:
    one executemany per set of changed columns (an executemany needs the same keys)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, item in changes.items():
        values = item.changes if isinstance(item, LockedLog) else item
        if values:
            groups.setdefault(tuple(sorted(values)), []).append({key: row_id, **values})
    if groups:
        connection = await session.connection()
        for params in groups.values():
            await connection.execute(statement, params)


def _empty_log(task_id: str) -> dict[str, Any]:
    """The ``task_logs`` row of a task whose log holds nothing yet."""
    return dict(task_id=task_id, last_seq=0, first_seq=1, state=None, state_version=0)


def _messages(rows: Iterable[Row[Any]]) -> list[WebSocketMessage]:
    """Envelopes of stored ``events`` rows (all their columns)."""
    return [_message(row._mapping) for row in rows]


def _message(values: Mapping[Any, Any]) -> WebSocketMessage:
    try:
        return WebSocketMessage.model_validate(values)
    except ValidationError:
        # data an older version stored, nested deeper than the model reads: the parts no
        # encoder writes become markers (taskline.domain.json_bounds.readable)
        data, problems = readable(values["data"])
        if not problems:
            raise
        logger.warning(
            "event %s (task %s, seq %s) holds values no encoder writes: %s",
            values["id"],
            values["task_id"],
            values["seq"],
            "; ".join(problems),
        )
        return WebSocketMessage.model_validate({**values, "data": data})
