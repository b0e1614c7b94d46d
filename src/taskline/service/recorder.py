"""Recording events in a task's log inside the caller's transaction: check them, apply what
they mean (:mod:`taskline.domain.effects`), store them and what they changed.

Two paths, both one transaction, both all or nothing:

- *Read-free* (a publisher's new events whose effect follows from their data alone:
  progress, confidence, messages, tool calls, custom...): three statements whatever the batch
  size — set the task's columns (which locks its row and proves it exists), move the log's
  head by the batch size (locking the log row), insert the events.
- *Reading* (status moves, agent status, shared state, subtask ticks, re-sent ids): lock the
  task and log rows in one statement, read what the batch's events need (stored ids, agents,
  subtasks), apply the events one by one, insert them, write back what they changed.

``apply=False`` records a change the caller has made already (the REST routes' ``task_*``
events): the server-only types are allowed, and only the log row is locked.

Every write by an agent passes the task's *fence* here, in its own transaction, on the task
row it locks (:func:`taskline.domain.leases.fence`): while another agent holds the task's
lease, or once the writer lost it, the write is refused (409) before anything is written;
the holder's published events renew its lease. Every way in (REST, the agent socket, the
SDK, AG-UI) records through these functions, so none of them can skip the fence.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.actors import Actor, ActorKind
from taskline.domain.effects import (
    DEFAULT_MAX_STATE_BYTES,
    NEEDS_STATE,
    Effects,
    Facts,
    apply_event,
    checked_data,
    is_read_free,
    progress_changes,
)
from taskline.domain.errors import NotFoundError, TasklineError
from taskline.domain.events import STATUS_EVENTS, EventIn, WebSocketEventType, WebSocketMessage
from taskline.domain.leases import LeaseState, fence, on_status
from taskline.domain.models import utc_now
from taskline.domain.status import TERMINAL_STATUSES, TaskStatus
from taskline.service.request_log import cancel_open
from taskline.store.agents import AgentStore
from taskline.store.events import EventLog, LockedLog, event_row
from taskline.store.leases import LeaseStore
from taskline.store.sections import SectionStore
from taskline.store.tasks import TaskStore

__all__ = ["Publish", "record_events", "record_read_free_group", "start_log"]

E = WebSocketEventType


async def start_log(
    session: AsyncSession, task_id: str, first: EventIn, *, actor: Actor, source: str
) -> WebSocketMessage:
    """Create a new task's log holding ``first`` (``task_created``) as seq 1: no reads."""
    data = checked_data(0, first, server=True)
    row = event_row(task_id, 1, first, data, now=utc_now(), source=source, actor=str(actor))
    return await EventLog(session).start(task_id, row)


async def record_events(
    session: AsyncSession,
    task_id: str,
    events: Sequence[EventIn],
    *,
    actor: Actor,
    source: str | None = None,
    apply: bool = True,
    keep_last: int | None = None,
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    followups: list[WebSocketMessage] | None = None,
) -> list[WebSocketMessage]:
    """Check, apply and store ``events`` for ``task_id``; return them with their seqs.

    Re-sent event ids return the stored event and store nothing. ``keep_last`` trims the log
    to its newest events afterwards (retention); ``max_state_bytes`` bounds the shared state
    (a snapshot or patch that would make it larger is refused).

    A batch that ends the task (completed, failed, cancelled) also cancels its open requests,
    in this transaction, by the same actor: the events logging that are appended to
    ``followups`` (the caller dispatches them with the batch), not returned, so what is
    returned matches ``events`` one to one.

    Raises:
        NotFoundError: the task does not exist (and ``apply`` is true).
        InvalidInputError: an event's data, type or effect is refused; names ``events.N``.
        ConflictError: an event id is already used on another task.
    """
    log = EventLog(session)
    if apply and is_read_free(events):
        committed, head = await _read_free(session, log, task_id, events, actor, source)
    else:
        committed, head = await _reading(
            session, log, task_id, events, actor, source, apply, max_state_bytes
        )
    if keep_last is not None:
        await log.trim(task_id, keep_last=keep_last, log=head)
    await log.save(task_id, head)
    if _ends(events):
        cancelled = await cancel_open(
            session, task_id, by=str(actor), now=utc_now(), comment="the task ended"
        )
        if cancelled:
            after = await record_events(
                session,
                task_id,
                cancelled,
                actor=actor,
                source=source,
                apply=False,
                keep_last=keep_last,
            )
            if followups is not None:
                followups.extend(after)
    return committed


def _ends(events: Sequence[EventIn]) -> bool:
    """Whether the batch holds an event that ends the task (it was accepted: it did)."""
    return any(STATUS_EVENTS.get(e.event_type) in _ENDED for e in events)


_ENDED = frozenset(s.value for s in TERMINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class Publish:
    """One publisher's batch: the events of one task, by one actor (from one source)."""

    task_id: str
    events: Sequence[EventIn]
    actor: Actor
    source: str | None


async def record_read_free_group(
    session: AsyncSession, publishes: Sequence[Publish], *, keep_last: int | None = None
) -> list[list[WebSocketMessage] | TasklineError]:
    """Store several read-free publishes (see :func:`is_read_free`), of any tasks, as if one
    after another, in a fixed few statements whatever their number: lock every task and its
    log (task rows first, in id order), set the tasks' columns, move the logs' heads, insert
    every event. A refused publish (a bad event, an unknown task) gets its error and writes
    nothing; the others are stored.
    """
    now = utc_now()
    log = EventLog(session)
    heads = await log.lock_many([p.task_id for p in publishes])  # with their leases
    outcomes: list[list[WebSocketMessage] | TasklineError] = []
    changes: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []  # each accepted publish's rows
    for publish in publishes:
        head = heads.get(publish.task_id)
        try:
            if head is None:
                raise NotFoundError("task", publish.task_id)
            checked = [(e, checked_data(i, e)) for i, e in enumerate(publish.events)]
            renewed = _fence(publish.task_id, head.lease, publish.actor, now)
        except TasklineError as exc:
            outcomes.append(exc)
            spans.append((0, 0))
            continue
        task_changes = changes.setdefault(publish.task_id, {})
        task_changes.update(renewed)
        who = str(publish.actor)
        start = len(rows)
        for event, data in checked:
            progress_changes(task_changes, event.event_type, data)
            head.last_seq += 1
            rows.append(
                event_row(
                    publish.task_id,
                    head.last_seq,
                    event,
                    data,
                    now=now,
                    source=publish.source,
                    actor=who,
                )
            )
        head.changes["last_seq"] = head.last_seq
        task_changes["updated_at"] = now
        outcomes.append([])
        spans.append((start, len(rows)))
    if rows:
        await TaskStore(session).set_columns_many(changes)
        inserted = await log.insert(rows)
        if keep_last is not None:
            for task_id in changes:
                await log.trim(task_id, keep_last=keep_last, log=heads[task_id])
        await log.save_many({task_id: heads[task_id] for task_id in changes})
        for index, (start, end) in enumerate(spans):
            if end > start:
                outcomes[index] = inserted[start:end]
    return outcomes


async def _read_free(
    session: AsyncSession,
    log: EventLog,
    task_id: str,
    events: Sequence[EventIn],
    actor: Actor,
    source: str | None,
) -> tuple[list[WebSocketMessage], LockedLog]:
    now = utc_now()
    checked: list[tuple[EventIn, dict[str, Any]]] = []
    changes: dict[str, Any] = {}
    tasks = TaskStore(session)
    try:
        for index, event in enumerate(events):
            data = checked_data(index, event)
            progress_changes(changes, event.event_type, data)
            checked.append((event, data))
    except Exception:
        if not await tasks.exists(task_id):  # a missing task is reported first
            raise NotFoundError("task", task_id) from None
        raise
    changes["updated_at"] = now
    if _agent_of(actor) is not None:
        changes.update(_fence(task_id, await LeaseStore(session).state(task_id), actor, now))
    if not await tasks.set_columns(task_id, changes):
        raise NotFoundError("task", task_id)
    head = await log.allocate(task_id, len(checked))
    first_seq = head.last_seq - len(checked) + 1
    who = str(actor)
    rows = [
        event_row(task_id, first_seq + i, event, data, now=now, source=source, actor=who)
        for i, (event, data) in enumerate(checked)
    ]
    return await log.insert(rows), head


async def _reading(
    session: AsyncSession,
    log: EventLog,
    task_id: str,
    events: Sequence[EventIn],
    actor: Actor,
    source: str | None,
    apply: bool,
    max_state_bytes: int,
) -> tuple[list[WebSocketMessage], LockedLog]:
    with_state = apply and any(e.event_type in NEEDS_STATE for e in events)
    facts: Facts | None = None
    now = utc_now()
    moves_status = apply and any(e.event_type in STATUS_EVENTS for e in events)
    lease: tuple[str, LeaseState] | None = None
    if moves_status or _agent_of(actor) is not None:
        lease = await LeaseStore(session).state(task_id)  # locks the task row first
    renewed = _fence(task_id, lease, actor, now)
    if apply:
        task, head = await log.lock(task_id, with_state=with_state)
        facts = Facts(
            task_id,
            TaskStatus(task.status),
            task.started_at,
            head.state_version,
            head.state,
            agents=await AgentStore(session).statuses(
                _named(events, E.AGENT_STATUS_CHANGE, "agent_id")
            ),
            subtasks=await SectionStore(session).sections_of(
                task_id, _named(events, E.SUBTASK_UPDATED, "subtask_id")
            ),
        )
    else:
        head = await log.lock_log(task_id)
    stored = await log.stored(task_id, [e.id for e in events if e.id])
    effects = Effects()
    rows: list[dict[str, Any]] = []
    committed: list[WebSocketMessage | int] = []  # stored envelopes, or indexes into rows
    seen_ids: set[str] = set()
    who = str(actor)
    for index, event in enumerate(events):
        if event.id and event.id in stored:
            committed.append(stored[event.id])
            continue
        if event.id and event.id in seen_ids:
            continue  # repeated inside the batch: stored once
        data = checked_data(index, event, server=not apply)
        if facts is not None:
            data = apply_event(
                facts,
                effects,
                event.event_type,
                data,
                prefix=f"events.{index}",
                now=now,
                max_state_bytes=max_state_bytes,
                run_id=event.run_id,
            )
        head.last_seq += 1
        row = event_row(task_id, head.last_seq, event, data, now=now, source=source, actor=who)
        seen_ids.add(row["id"])
        committed.append(len(rows))
        rows.append(row)
    inserted = await log.insert(rows) if rows else []
    if rows:
        head.changes["last_seq"] = head.last_seq
    envelopes = [inserted[c] if isinstance(c, int) else c for c in committed]
    if facts is not None:
        if any(m.seq == head.last_seq for m in envelopes):  # the newest event is this batch's
            effects.task["updated_at"] = now
        if rows:
            effects.task.update(renewed)
        if lease is not None and task.status != facts.status.value:
            moved = on_status(
                lease[1], TaskStatus(task.status), facts.status, by=_agent_of(actor), now=now
            )
            effects.task.update(moved)
        await _write_effects(session, task_id, effects, head)
    return envelopes, head


def _agent_of(actor: Actor) -> str | None:
    """The agent id whose writes are fenced (None: a person, a token, the server)."""
    return actor.id if actor.kind == ActorKind.AGENT else None


def _fence(
    task_id: str, lease: tuple[str, LeaseState] | None, actor: Actor, now: datetime
) -> dict[str, Any]:
    """The lease columns an actor's write sets (a holder's renewal), or raise
    :class:`~taskline.domain.errors.LeaseConflictError` (see :func:`fence`). No lease read
    (an unknown task, a write that is not an agent's): nothing to decide."""
    agent_id = _agent_of(actor)
    if lease is None or agent_id is None:
        return {}
    status, state = lease
    return fence(task_id, state, agent_id, status=status, now=now)


async def _write_effects(
    session: AsyncSession, task_id: str, effects: Effects, head: LockedLog
) -> None:
    """Store what a batch changed besides the log: agents, subtasks, the task, the state."""
    agents = AgentStore(session)
    for agent_id, changes in effects.agents.items():
        await agents.set_columns(agent_id, changes)
    sections = SectionStore(session)
    for subtask_id, done in effects.subtasks.items():
        await sections.set_done(subtask_id, done)
    if effects.task:
        await TaskStore(session).set_columns(task_id, effects.task)
    head.changes.update(effects.log)


def _named(events: Sequence[EventIn], kind: WebSocketEventType, key: str) -> list[str]:
    """The ids that events of ``kind`` name under ``data[key]`` (what the batch must read)."""
    return [
        value
        for event in events
        if event.event_type == kind and isinstance(value := event.data.get(key), str)
    ]
