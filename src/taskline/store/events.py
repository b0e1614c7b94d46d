"""The durable, ordered, per-task event log and the state it derives.

Rules (design.md):
- ``seq`` is gapless per task and commit-ordered: it is allocated by incrementing the task's
  ``task_logs`` row inside the appending transaction, which locks that row until commit
  (PostgreSQL row lock; SQLite serialises writers), so no two transactions interleave seqs.
- Appending is idempotent by event ``id``: an id already stored for the same task returns the
  stored event instead of a new one; the same id on another task is a conflict.
- Appending an event also applies what it means: progress, confidence, status (through the
  state machine), agent status, the shared state document (snapshot / JSON Patch with a
  ``version``). Anything refused rolls back the whole batch.

Publishing is the hottest write path, so this module speaks SQLAlchemy Core on the session's
connection (plain selects, inserts and updates of the columns involved) rather than loading
ORM objects; the rows it touches are never left in the session's identity map. Every writer
locks a task's row before its log row. A batch of new events whose effects need nothing read
(progress, confidence, custom, messages, tool calls, ...) takes three statements: update the
task (locking it), move the log head by the batch size (locking it, returning the new head),
insert the events. Any other batch locks both rows with one select, looks up the ids it
carries, then applies its events one by one.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import jsonpatch
from sqlalchemy import Integer, Row, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskline.domain.errors import ConflictError, InvalidInputError, NotFoundError
from taskline.domain.events import (
    LOGGED_EVENTS,
    STATUS_EVENTS,
    EventIn,
    WebSocketEventType,
    WebSocketMessage,
    validate_data,
)
from taskline.domain.ids import new_id
from taskline.domain.models import utc_now
from taskline.domain.status import AgentStatus, TaskStatus, check_transition, status_timestamps
from taskline.store.tables import (
    AGENTS,
    EVENTS,
    SECTIONS,
    SUBTASKS,
    TASK_LOGS,
    TASKS,
    EventRow,
    LogMetaRow,
)

__all__ = ["SERVER_ONLY_EVENTS", "EventLog", "LogHead", "TaskState"]

E = WebSocketEventType

#: Events only the server itself writes (from REST changes); publishers may not send them.
SERVER_ONLY_EVENTS = frozenset({E.TASK_CREATED, E.TASK_DELETED})

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
# every writer takes them in. No row: the task or its log is missing (see ``_lock``).
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
# The SET clause of these comes from the parameters given: only the columns that changed.
_UPDATE_TASK = update(TASKS).where(TASKS.c.id == bindparam("where_task_id"))
_UPDATE_LOG = update(TASK_LOGS).where(_LOG.task_id == bindparam("where_task_id"))
_UPDATE_AGENT = update(AGENTS).where(AGENTS.c.id == bindparam("where_agent_id"))

#: Event types whose effect on the task follows from their data alone (or that have none).
#: A batch of only these, without client ids, needs nothing read before it is written.
_READ_FREE_EVENTS = (
    LOGGED_EVENTS
    - STATUS_EVENTS.keys()
    - SERVER_ONLY_EVENTS
    - {E.AGENT_STATUS_CHANGE, E.STATE_SNAPSHOT, E.STATE_PATCH, E.SUBTASK_UPDATED}
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


class _LockedLog:
    """A task's ``task_logs`` row, locked by this transaction, and what the batch changes.

    ``state`` is only read when the batch needs it (a ``state.patch``); ``changes`` holds the
    columns to write back.
    """

    __slots__ = ("changes", "first_seq", "last_seq", "state", "state_version")

    def __init__(self, last_seq: int, first_seq: int, state_version: int, state: Any) -> None:
        self.last_seq = last_seq
        self.first_seq = first_seq
        self.state_version = state_version
        self.state = state
        self.changes: dict[str, Any] = {}

    @classmethod
    def from_row(cls, row: Row[Any], *, with_state: bool = False) -> "_LockedLog":
        """From a row holding the ``_LOG_HEAD`` columns (and ``state`` if ``with_state``)."""
        state = row.state if with_state else None
        return cls(row.last_seq, row.first_seq, row.state_version, state)


class _LockedTask:
    """The columns of a locked task that events read, and the columns they change."""

    __slots__ = ("changes", "id", "started_at", "status")

    def __init__(self, task_id: str, status: str, started_at: object) -> None:
        self.id = task_id
        self.status = status
        self.started_at = started_at
        self.changes: dict[str, Any] = {}


class EventLog:
    """Event log operations inside one transaction (the caller owns the session)."""

    def __init__(self, session: AsyncSession, *, keep_last: int | None = None) -> None:
        """``keep_last``: the retention policy; after an append, all but the newest
        ``keep_last`` events of the task are trimmed (None keeps everything)."""
        self.session = session
        self.keep_last = keep_last

    # --- writing ----------------------------------------------------------------------------

    async def start(
        self, task_id: str, first: EventIn, *, source: str | None = None
    ) -> WebSocketMessage:
        """Create the log of a task that has none yet, holding ``first`` as seq 1.

        Two Core inserts, no reads: the fast path for a new task (``task_created``).
        """
        data = validate_data(first.event_type, dict(first.data))
        await self.session.execute(
            insert(TASK_LOGS),
            [{**_empty_log(task_id), "last_seq": 1}],
        )
        values = _event_values(task_id, 1, first, data, now=utc_now(), source=source)
        await self.session.execute(insert(EVENTS), [values])
        return WebSocketMessage.model_validate(values)

    async def open(self, task_id: str) -> None:
        """Create the (empty) log of a new task; a log that exists already is kept."""
        connection = await self.session.connection()
        if (await connection.execute(_LOG_HEAD, {"task_id": task_id})).first() is None:
            await connection.execute(insert(TASK_LOGS), _empty_log(task_id))

    async def append(
        self,
        task_id: str,
        events: Sequence[EventIn],
        *,
        source: str | None = None,
        server: bool = False,
    ) -> list[WebSocketMessage]:
        """Validate, apply and store ``events`` for ``task_id``; return them with their seqs.

        The task row is locked first, then its log row (every writer takes them in that
        order); the batch's seqs are allocated under that lock and written in the same
        transaction. ``server=True`` allows the server-only types (task_created, task_deleted)
        and skips locking and changing the task (the REST route has already changed it, and
        a deleted task still gets its ``task_deleted``).

        Raises:
            NotFoundError: the task does not exist (and ``server`` is false).
            InvalidInputError: an event's data, type or effect is refused; names ``events.N``.
            ConflictError: an event id is already used on another task.
        """
        connection = await self.session.connection()
        if _read_free(events, server=server):
            committed, log = await _append_read_free(connection, task_id, events, source)
        else:
            committed, log = await _append_reading(connection, task_id, events, source, server)
        if self.keep_last is not None:
            await _trim(connection, task_id, log, keep_last=self.keep_last)
        if log.changes:
            await connection.execute(_UPDATE_LOG, {"where_task_id": task_id, **log.changes})
        return committed

    async def trim(self, task_id: str, *, keep_last: int) -> int:
        """Delete all but the newest ``keep_last`` events of a task; return how many went.

        A task without a log gets an empty one (nothing to trim).
        """
        connection = await self.session.connection()
        log = await _lock_log(connection, task_id, with_state=False)
        trimmed = await _trim(connection, task_id, log, keep_last=keep_last)
        if log.changes:
            await connection.execute(_UPDATE_LOG, {"where_task_id": task_id, **log.changes})
        return trimmed

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

    async def read(
        self,
        task_id: str,
        *,
        since: int = 0,
        limit: int | None = None,
        types: Sequence[str] = (),
    ) -> list[WebSocketMessage]:
        """Return the task's events with ``seq > since`` in seq order."""
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


# --- the append path ------------------------------------------------------------------------


def _read_free(events: Sequence[EventIn], *, server: bool) -> bool:
    """Whether ``events`` can take :func:`_append_read_free`: a publisher's non-empty batch
    of new events (no ids to look up) of :data:`_READ_FREE_EVENTS` types."""
    return (
        bool(events)
        and not server
        and all(e.id is None and e.event_type in _READ_FREE_EVENTS for e in events)
    )


async def _append_read_free(
    connection: AsyncConnection, task_id: str, events: Sequence[EventIn], source: str | None
) -> tuple[list[WebSocketMessage], _LockedLog]:
    """Store new events whose effects need nothing read first, in three statements.

    The batch is validated and its effect on the task computed up front; then the task row
    is changed (which locks it and proves it exists), seqs are allocated on the log row
    (locking it), and the events are inserted. A missing task is reported before a refused
    event, as on the reading path.
    """
    now = utc_now()
    checked: list[tuple[EventIn, dict[str, Any]]] = []
    changes: dict[str, Any] = {}
    try:
        for index, event in enumerate(events):
            data = _checked_data(index, event, server=False)
            _change_progress(changes, event.event_type, data)
            checked.append((event, data))
    except Exception:
        await _require_task(connection, task_id)
        raise
    changes["updated_at"] = now
    touched = await connection.execute(_UPDATE_TASK, {"where_task_id": task_id, **changes})
    if touched.rowcount == 0:
        raise NotFoundError("task", task_id)
    log = await _allocate(connection, task_id, len(checked))
    first_seq = log.last_seq - len(checked) + 1
    rows = [
        _event_values(task_id, first_seq + i, event, data, now=now, source=source)
        for i, (event, data) in enumerate(checked)
    ]
    await connection.execute(insert(EVENTS), rows)
    return [WebSocketMessage.model_validate(values) for values in rows], log


async def _append_reading(
    connection: AsyncConnection,
    task_id: str,
    events: Sequence[EventIn],
    source: str | None,
    server: bool,
) -> tuple[list[WebSocketMessage], _LockedLog]:
    """Store events one by one against the locked task and log rows: status moves, state
    patches, agents, subtasks, ids that may be stored already. ``server`` skips the task."""
    with_state = any(e.event_type == E.STATE_PATCH for e in events)
    if server:
        task, log = None, await _lock_log(connection, task_id, with_state=with_state)
    else:
        task, log = await _lock(connection, task_id, with_state=with_state)
    stored = await _already_stored(connection, task_id, [e.id for e in events if e.id])
    rows: list[dict[str, Any]] = []
    committed: list[WebSocketMessage] = []
    seen_ids: set[str] = set()
    now = utc_now()
    for index, event in enumerate(events):
        if event.id and event.id in stored:
            committed.append(stored[event.id])
            continue
        if event.id and event.id in seen_ids:
            continue  # repeated inside the batch: stored once
        data = _checked_data(index, event, server=server)
        if task is not None:
            data = await _apply(connection, task, log, event, data, f"events.{index}", now)
        log.last_seq += 1
        values = _event_values(task_id, log.last_seq, event, data, now=now, source=source)
        seen_ids.add(values["id"])
        rows.append(values)
        committed.append(WebSocketMessage.model_validate(values))
    if rows:
        await connection.execute(insert(EVENTS), rows)
        log.changes["last_seq"] = log.last_seq
    if task is not None and any(m.seq == log.last_seq for m in committed):
        task.changes["updated_at"] = now
    if task is not None and task.changes:
        await connection.execute(_UPDATE_TASK, {"where_task_id": task_id, **task.changes})
    return committed, log


def _checked_data(index: int, event: EventIn, *, server: bool) -> dict[str, Any]:
    """The event's data validated against its type; a refused event names ``events.N``."""
    prefix = f"events.{index}"
    if event.event_type not in LOGGED_EVENTS:
        raise InvalidInputError(
            f"{prefix}.event_type: {event.event_type.value!r} is a connection message "
            "and cannot be logged",
            field=f"{prefix}.event_type",
        )
    if not server and event.event_type in SERVER_ONLY_EVENTS:
        raise InvalidInputError(
            f"{prefix}.event_type: {event.event_type.value!r} is written by the server",
            field=f"{prefix}.event_type",
        )
    return validate_data(event.event_type, dict(event.data), field_prefix=f"{prefix}.data")


async def _lock(
    connection: AsyncConnection, task_id: str, *, with_state: bool
) -> tuple[_LockedTask, _LockedLog]:
    """Lock the task's row, then its log's, in one statement when both exist."""
    statement = _LOCK_TASK_AND_LOG_WITH_STATE if with_state else _LOCK_TASK_AND_LOG
    row = (await connection.execute(statement, {"task_id": task_id})).first()
    if row is None:  # no task (raises), or a task without a log yet
        task = await _lock_task(connection, task_id)
        return task, await _lock_log(connection, task_id, with_state=with_state)
    log = _LockedLog.from_row(row, with_state=with_state)
    return _LockedTask(task_id, row.status, row.started_at), log


async def _lock_task(connection: AsyncConnection, task_id: str) -> _LockedTask:
    """Lock the task's row and read what status events need; raise if there is no task."""
    row = (await connection.execute(_LOCK_TASK, {"task_id": task_id})).first()
    if row is None:
        raise NotFoundError("task", task_id)
    return _LockedTask(task_id, row.status, row.started_at)


async def _lock_log(connection: AsyncConnection, task_id: str, *, with_state: bool) -> _LockedLog:
    """Lock the task's log row (seqs are allocated under this lock), creating an empty log
    for a task that has none yet. ``with_state`` also reads the shared state document."""
    statement = _LOCK_LOG_WITH_STATE if with_state else _LOCK_LOG
    row = (await connection.execute(statement, {"task_id": task_id})).first()
    if row is None:
        await connection.execute(insert(TASK_LOGS), _empty_log(task_id))
        return _LockedLog(last_seq=0, first_seq=1, state_version=0, state=None)
    return _LockedLog.from_row(row, with_state=with_state)


async def _allocate(connection: AsyncConnection, task_id: str, count: int) -> _LockedLog:
    """Move the log's head ``count`` seqs on (creating the log if the task has none yet);
    return the locked log with ``last_seq`` already written."""
    params = {"where_task_id": task_id, "count": count}
    row = (await connection.execute(_ALLOCATE, params)).first()
    if row is None:
        await connection.execute(insert(TASK_LOGS), {**_empty_log(task_id), "last_seq": count})
        return _LockedLog(last_seq=count, first_seq=1, state_version=0, state=None)
    return _LockedLog.from_row(row)


async def _already_stored(
    connection: AsyncConnection, task_id: str, ids: Sequence[str]
) -> dict[str, WebSocketMessage]:
    """The stored events among ``ids``; raise :class:`ConflictError` if one is another task's."""
    if not ids:
        return {}
    result = await connection.execute(select(EVENTS).where(EVENTS.c.id.in_(ids)))
    found: dict[str, WebSocketMessage] = {}
    for message in _messages(result):
        if message.task_id != task_id:
            raise ConflictError(
                f"event id {message.id!r} is already used on task {message.task_id!r}"
            )
        found[message.id] = message
    return found


async def _apply(
    connection: AsyncConnection,
    task: _LockedTask,
    log: _LockedLog,
    event: EventIn,
    data: dict[str, Any],
    prefix: str,
    now: datetime,
) -> dict[str, Any]:
    """Apply one event to the task (in ``task.changes``), its log's state, an agent or a
    subtask; return its data as stored (with ``version``, ``previous``, ``section_id``)."""
    kind = event.event_type
    if kind in (E.PROGRESS_UPDATE, E.CONFIDENCE_UPDATE):
        _change_progress(task.changes, kind, data)
    elif kind in STATUS_EVENTS:
        _change_status(task, kind, data, prefix, now)
    elif kind == E.AGENT_STATUS_CHANGE:
        await _change_agent(connection, task, data, prefix, now)
    elif kind == E.STATE_SNAPSHOT:
        log.state = data["snapshot"]
        log.state_version += 1
        log.changes.update(state=log.state, state_version=log.state_version)
        data["version"] = log.state_version
    elif kind == E.STATE_PATCH:
        document = log.state if log.state is not None else {}
        try:
            log.state = jsonpatch.apply_patch(document, data["patch"], in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise InvalidInputError(
                f"{prefix}.data.patch: does not apply to state version {log.state_version}: {exc}",
                field=f"{prefix}.data.patch",
            ) from None
        log.state_version += 1
        log.changes.update(state=log.state, state_version=log.state_version)
        data["version"] = log.state_version
    elif kind == E.SUBTASK_UPDATED and data.get("done") is not None:
        await _tick_subtask(connection, task, data, prefix)
    return data


def _change_progress(
    changes: dict[str, Any], kind: WebSocketEventType, data: dict[str, Any]
) -> None:
    """Put what a progress or confidence event sets on the task into ``changes``."""
    if kind == E.PROGRESS_UPDATE:
        changes["progress"] = data["progress"]
        if data.get("confidence") is not None:
            changes["confidence"] = data["confidence"]
    elif kind == E.CONFIDENCE_UPDATE:
        changes["confidence"] = data["confidence"]


def _change_status(
    task: _LockedTask, kind: WebSocketEventType, data: dict[str, Any], prefix: str, now: datetime
) -> None:
    """Move the task through the state machine; a refused move names ``events.N``."""
    current = TaskStatus(task.status)
    new = TaskStatus(STATUS_EVENTS[kind])
    try:
        check_transition(task.id, current, new)
    except ConflictError as exc:
        raise InvalidInputError(f"{prefix}: {exc.detail}", field=prefix) from None
    for name, value in status_timestamps(current, new, started_at=task.started_at, now=now).items():
        task.changes[name] = value
        if name == "started_at":
            task.started_at = value
    task.status = new.value
    task.changes["status"] = new.value
    if new == TaskStatus.COMPLETED:
        task.changes["progress"] = 1.0
    if data.get("result") is not None:
        task.changes["result"] = data["result"]
    elif kind == E.TASK_FAILED and data.get("error"):
        task.changes["result"] = {"error": data["error"]}


async def _change_agent(
    connection: AsyncConnection,
    task: _LockedTask,
    data: dict[str, Any],
    prefix: str,
    now: datetime,
) -> None:
    """Set the agent's status (and ``data["previous"]``); an unknown agent is refused."""
    statement = select(AGENTS.c.status).where(AGENTS.c.id == data["agent_id"])
    previous = (await connection.execute(statement)).scalar_one_or_none()
    if previous is None:
        raise InvalidInputError(
            f"{prefix}.data.agent_id: agent {data['agent_id']!r} does not exist",
            field=f"{prefix}.data.agent_id",
        )
    data["previous"] = data.get("previous") or previous
    status = AgentStatus(data["status"])
    changes: dict[str, Any] = {"status": status.value, "last_seen_at": now, "updated_at": now}
    if status == AgentStatus.WORKING:
        changes["current_task_id"] = task.id
    await connection.execute(_UPDATE_AGENT, {"where_agent_id": data["agent_id"], **changes})


async def _tick_subtask(
    connection: AsyncConnection, task: _LockedTask, data: dict[str, Any], prefix: str
) -> None:
    """Set a subtask of this task done or not (and ``data["section_id"]``)."""
    statement = (
        select(SUBTASKS.c.section_id)
        .join(SECTIONS, SECTIONS.c.id == SUBTASKS.c.section_id)
        .where(SUBTASKS.c.id == data["subtask_id"], SECTIONS.c.task_id == task.id)
    )
    section_id = (await connection.execute(statement)).scalar_one_or_none()
    if section_id is None:
        raise InvalidInputError(
            f"{prefix}.data.subtask_id: subtask {data['subtask_id']!r} is not in this task",
            field=f"{prefix}.data.subtask_id",
        )
    await connection.execute(
        update(SUBTASKS).where(SUBTASKS.c.id == data["subtask_id"]).values(done=bool(data["done"]))
    )
    data["section_id"] = section_id


async def _trim(
    connection: AsyncConnection, task_id: str, log: _LockedLog, *, keep_last: int
) -> int:
    """Delete all but the newest ``keep_last`` events; the new ``first_seq`` goes into
    ``log.changes``. Return how many events went."""
    first_kept = max(1, log.last_seq - keep_last + 1)
    if first_kept <= log.first_seq:
        return 0
    result = await connection.execute(
        delete(EVENTS).where(EVENTS.c.task_id == task_id, EVENTS.c.seq < first_kept)
    )
    log.first_seq = first_kept
    log.changes["first_seq"] = first_kept
    return int(result.rowcount)


async def _require_task(connection: AsyncConnection, task_id: str) -> None:
    """Raise :class:`NotFoundError` unless the task exists."""
    statement = select(TASKS.c.id).where(TASKS.c.id == task_id)
    if (await connection.execute(statement)).first() is None:
        raise NotFoundError("task", task_id)


def _empty_log(task_id: str) -> dict[str, Any]:
    """The ``task_logs`` row of a task whose log holds nothing yet."""
    return dict(task_id=task_id, last_seq=0, first_seq=1, state=None, state_version=0)


def _event_values(
    task_id: str,
    seq: int,
    event: EventIn,
    data: dict[str, Any],
    *,
    now: datetime,
    source: str | None,
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
        "client_id": event.client_id,
        "run_id": event.run_id,
        "parent_run_id": event.parent_run_id,
        "agent_id": event.agent_id,
    }


def _messages(rows: Iterable[Row[Any]]) -> list[WebSocketMessage]:
    """Envelopes of stored ``events`` rows (all their columns)."""
    return [WebSocketMessage.model_validate(row._mapping) for row in rows]
