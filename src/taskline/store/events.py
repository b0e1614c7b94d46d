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
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jsonpatch
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

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
    AgentRow,
    EventRow,
    LogMetaRow,
    SectionRow,
    SubtaskRow,
    TaskLogRow,
    TaskRow,
)

__all__ = ["SERVER_ONLY_EVENTS", "EventLog", "LogHead", "TaskState"]

E = WebSocketEventType

#: Events only the server itself writes (from REST changes); publishers may not send them.
SERVER_ONLY_EVENTS = frozenset({E.TASK_CREATED, E.TASK_DELETED})

_TASK_LOGS: Table = TaskLogRow.__table__  # type: ignore[assignment]
_EVENTS: Table = EventRow.__table__  # type: ignore[assignment]


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
            insert(_TASK_LOGS),
            [dict(task_id=task_id, last_seq=1, first_seq=1, state=None, state_version=0)],
        )
        values = _event_values(task_id, 1, first, data, now=utc_now(), source=source)
        await self.session.execute(insert(_EVENTS), [values])
        return WebSocketMessage.model_validate(values)

    async def open(self, task_id: str) -> None:
        """Create the (empty) log of a new task; a log that exists already is kept."""
        if await self.session.get(TaskLogRow, task_id) is None:
            self.session.add(
                TaskLogRow(task_id=task_id, last_seq=0, first_seq=1, state=None, state_version=0)
            )
            await self.session.flush()

    async def append(
        self,
        task_id: str,
        events: Sequence[EventIn],
        *,
        source: str | None = None,
        server: bool = False,
    ) -> list[WebSocketMessage]:
        """Validate, apply and store ``events`` for ``task_id``; return them with their seqs.

        ``server=True`` allows the server-only types (task_created, task_deleted) and skips
        applying status events (the REST route has already changed the task).

        Raises:
            NotFoundError: the task does not exist (and ``server`` is false).
            InvalidInputError: an event's data, type or effect is refused; names ``events.N``.
            ConflictError: an event id is already used on another task.
        """
        task = None
        if not server:
            task = await self.session.get(TaskRow, task_id, with_for_update=True)
            if task is None:
                raise NotFoundError("task", task_id)
        stored = await self._already_stored(task_id, [e.id for e in events if e.id])
        log = await self._lock_log(task_id)
        committed: list[WebSocketMessage] = []
        seen_ids: set[str] = set()
        now = utc_now()
        for index, event in enumerate(events):
            if event.id and event.id in stored:
                committed.append(stored[event.id])
                continue
            if event.id and event.id in seen_ids:
                continue  # repeated inside the batch: stored once
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
            data = validate_data(event.event_type, dict(event.data), field_prefix=f"{prefix}.data")
            if task is not None:
                data = await self._apply(task, log, event, data, prefix, now)
            log.last_seq += 1
            row = _event_row(task_id, log.last_seq, event, data, now=now, source=source)
            seen_ids.add(row.id)
            self.session.add(row)
            committed.append(_message(row))
        if task is not None and any(m.seq == log.last_seq for m in committed):
            task.updated_at = now
        await self.session.flush()
        if self.keep_last is not None and log.last_seq - log.first_seq + 1 > self.keep_last:
            await self.trim(task_id, keep_last=self.keep_last)
        return committed

    async def trim(self, task_id: str, *, keep_last: int) -> int:
        """Delete all but the newest ``keep_last`` events of a task; return how many went."""
        log = await self._lock_log(task_id)
        first_kept = max(1, log.last_seq - keep_last + 1)
        if first_kept <= log.first_seq:
            return 0
        result = await self.session.execute(
            delete(EventRow).where(EventRow.task_id == task_id, EventRow.seq < first_kept)
        )
        log.first_seq = first_kept
        await self.session.flush()
        return int(result.rowcount)  # type: ignore[attr-defined]

    # --- reading ----------------------------------------------------------------------------

    async def head(self, task_id: str) -> LogHead:
        """Return the log's retained range; an unknown task raises :class:`NotFoundError`.

        A task that has no log yet (seeded or imported, not changed since) has an empty one.
        """
        log = await self.session.get(TaskLogRow, task_id, populate_existing=True)
        if log is None:
            if await self.session.get(TaskRow, task_id) is None:
                raise NotFoundError("task", task_id)
            return LogHead(1, 0)
        return LogHead(log.first_seq, log.last_seq)

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
            select(EventRow)
            .where(EventRow.task_id == task_id, EventRow.seq > since)
            .order_by(EventRow.seq)
        )
        if types:
            statement = statement.where(EventRow.event_type.in_(list(types)))
        if limit is not None:
            statement = statement.limit(limit)
        rows = (await self.session.execute(statement)).scalars()
        return [_message(row) for row in rows]

    async def recent(
        self,
        *,
        limit: int = 100,
        types: Sequence[str] = (),
        task_id: str | None = None,
        since_time: datetime | None = None,
    ) -> list[WebSocketMessage]:
        """Return the newest events across tasks (newest last)."""
        statement = select(EventRow).order_by(EventRow.timestamp.desc(), EventRow.seq.desc())
        if types:
            statement = statement.where(EventRow.event_type.in_(list(types)))
        if task_id:
            statement = statement.where(EventRow.task_id == task_id)
        if since_time:
            statement = statement.where(EventRow.timestamp > since_time)
        rows = (await self.session.execute(statement.limit(limit))).scalars().all()
        return [_message(row) for row in reversed(rows)]

    async def state(self, task_id: str) -> TaskState:
        """The shared state document (``{}`` and version 0 before any is set)."""
        if await self.session.get(TaskRow, task_id) is None:
            raise NotFoundError("task", task_id)
        log = await self.session.get(TaskLogRow, task_id, populate_existing=True)
        if log is None:
            return TaskState({}, 0)
        return TaskState(log.state if log.state is not None else {}, log.state_version)

    async def epoch(self) -> str:
        """Return this database's log epoch (created by the migration)."""
        value = await self.session.scalar(select(LogMetaRow.value).where(LogMetaRow.key == "epoch"))
        return value or "unknown"

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(EventRow)) or 0)

    # --- internals --------------------------------------------------------------------------

    async def _lock_log(self, task_id: str) -> TaskLogRow:
        log = await self.session.get(
            TaskLogRow, task_id, with_for_update=True, populate_existing=True
        )
        if log is None:
            await self.open(task_id)
            log = await self.session.get(TaskLogRow, task_id, with_for_update=True)
            assert log is not None
        return log

    async def _already_stored(
        self, task_id: str, ids: Sequence[str]
    ) -> dict[str, WebSocketMessage]:
        if not ids:
            return {}
        rows = (await self.session.execute(select(EventRow).where(EventRow.id.in_(ids)))).scalars()
        found: dict[str, WebSocketMessage] = {}
        for row in rows:
            if row.task_id != task_id:
                raise ConflictError(f"event id {row.id!r} is already used on task {row.task_id!r}")
            found[row.id] = _message(row)
        return found

    async def _apply(
        self,
        task: TaskRow,
        log: TaskLogRow,
        event: EventIn,
        data: dict[str, Any],
        prefix: str,
        now: datetime,
    ) -> dict[str, Any]:
        kind = event.event_type
        if kind == E.PROGRESS_UPDATE:
            task.progress = data["progress"]
            if data.get("confidence") is not None:
                task.confidence = data["confidence"]
        elif kind == E.CONFIDENCE_UPDATE:
            task.confidence = data["confidence"]
        elif kind in STATUS_EVENTS:
            current = TaskStatus(task.status)
            new = TaskStatus(STATUS_EVENTS[kind])
            try:
                check_transition(task.id, current, new)
            except ConflictError as exc:
                raise InvalidInputError(f"{prefix}: {exc.detail}", field=prefix) from None
            for name, value in status_timestamps(
                current, new, started_at=task.started_at, now=now
            ).items():
                setattr(task, name, value)
            task.status = new.value
            if new == TaskStatus.COMPLETED:
                task.progress = 1.0
            if data.get("result") is not None:
                task.result = data["result"]
            elif kind == E.TASK_FAILED and data.get("error"):
                task.result = {"error": data["error"]}
        elif kind == E.AGENT_STATUS_CHANGE:
            agent = await self.session.get(AgentRow, data["agent_id"])
            if agent is None:
                raise InvalidInputError(
                    f"{prefix}.data.agent_id: agent {data['agent_id']!r} does not exist",
                    field=f"{prefix}.data.agent_id",
                )
            data["previous"] = data.get("previous") or agent.status
            agent.status = AgentStatus(data["status"]).value
            agent.last_seen_at = now
            agent.updated_at = now
            if agent.status == AgentStatus.WORKING:
                agent.current_task_id = task.id
        elif kind == E.STATE_SNAPSHOT:
            log.state = data["snapshot"]
            log.state_version += 1
            data["version"] = log.state_version
        elif kind == E.STATE_PATCH:
            document = log.state if log.state is not None else {}
            try:
                log.state = jsonpatch.apply_patch(document, data["patch"], in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise InvalidInputError(
                    f"{prefix}.data.patch: does not apply to state version "
                    f"{log.state_version}: {exc}",
                    field=f"{prefix}.data.patch",
                ) from None
            log.state_version += 1
            data["version"] = log.state_version
        elif kind == E.SUBTASK_UPDATED and data.get("done") is not None:
            await self._tick_subtask(task, data, prefix)
        return data

    async def _tick_subtask(self, task: TaskRow, data: dict[str, Any], prefix: str) -> None:
        subtask = await self.session.scalar(
            select(SubtaskRow)
            .join(SectionRow, SectionRow.id == SubtaskRow.section_id)
            .where(SubtaskRow.id == data["subtask_id"], SectionRow.task_id == task.id)
        )
        if subtask is None:
            raise InvalidInputError(
                f"{prefix}.data.subtask_id: subtask {data['subtask_id']!r} is not in this task",
                field=f"{prefix}.data.subtask_id",
            )
        subtask.done = bool(data["done"])
        data["section_id"] = subtask.section_id


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


def _event_row(
    task_id: str,
    seq: int,
    event: EventIn,
    data: dict[str, Any],
    *,
    now: datetime,
    source: str | None,
) -> EventRow:
    return EventRow(**_event_values(task_id, seq, event, data, now=now, source=source))


def _message(row: EventRow) -> WebSocketMessage:
    return WebSocketMessage(
        id=row.id,
        seq=row.seq,
        task_id=row.task_id,
        event_type=WebSocketEventType(row.event_type),
        data=row.data,
        timestamp=row.timestamp,
        source=row.source,
        client_id=row.client_id,
        run_id=row.run_id,
        parent_run_id=row.parent_run_id,
        agent_id=row.agent_id,
    )
