"""What an event does to its task: pure functions from (what the task is now, the event) to
(what changes, the event's data as stored). No database here; the application layer reads
the facts, calls these, and has the store write the changes.

An event may change:

- the task: ``progress_update`` / ``confidence_update`` set its figures; ``task_*`` status
  events move it through the state machine (:func:`taskline.domain.status.check_transition`),
  stamping ``started_at`` / ``completed_at`` and the ``result``. A ``task_started`` naming
  its run (``run_id``) on a completed or failed task is a new run reopening it
  (:func:`~taskline.domain.status.check_run_start`): the event records ``reopened_from``
  (the status it left) and the task's progress starts again from 0;
- an agent: ``agent_status_change`` sets its status (``working`` also makes this task its
  current one) and records the ``previous`` status on the event;
- the shared state: ``state.snapshot`` replaces it, ``state.patch`` applies RFC 6902 to it
  (:mod:`taskline.domain.json_patch`; an empty patch changes nothing); each bumps the state
  ``version``, stamped on the event. A snapshot or patch whose result would be larger than
  ``max_state_bytes`` (compact JSON) is refused;
- a subtask of the task: ``subtask_updated`` with ``done`` ticks or unticks it, and the event
  records its ``section_id``.

Anything refused raises :class:`InvalidInputError` naming the field (``events.N...``), and the
caller refuses the whole batch.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from taskline.domain.errors import ConflictError, InvalidInputError
from taskline.domain.events import (
    LOGGED_EVENTS,
    SERVER_ONLY_EVENTS,
    STATUS_EVENTS,
    EventIn,
    WebSocketEventType,
    validate_data,
)
from taskline.domain.json_patch import DEFAULT_MAX_STATE_BYTES, PatchError, apply_patch
from taskline.domain.status import (
    AgentStatus,
    TaskStatus,
    check_run_start,
    check_transition,
    status_timestamps,
)

__all__ = [
    "DEFAULT_MAX_STATE_BYTES",
    "NEEDS_STATE",
    "READ_FREE_EVENTS",
    "Effects",
    "Facts",
    "apply_event",
    "checked_data",
    "is_read_free",
    "progress_changes",
]

E = WebSocketEventType

#: Event types whose effect on the task follows from their data alone (or that have none).
#: A batch of only these, without event ids, needs nothing read before it is written.
READ_FREE_EVENTS = (
    LOGGED_EVENTS
    - STATUS_EVENTS.keys()
    - SERVER_ONLY_EVENTS
    - {E.AGENT_STATUS_CHANGE, E.STATE_SNAPSHOT, E.STATE_PATCH, E.SUBTASK_UPDATED}
)

#: Types whose effect needs the shared state document read first.
NEEDS_STATE = frozenset({E.STATE_PATCH})


@dataclass(slots=True)
class Facts:
    """What the events of a batch read about their task, as it is before the batch.

    ``state`` is the shared state document (``None``: never set, or not read because no
    event of the batch needs it). ``agents`` holds the status of each agent the batch names;
    ``subtasks`` the section of each subtask of this task the batch names (a subtask that is
    not in the task is absent).
    """

    task_id: str
    status: TaskStatus
    started_at: datetime | None
    state_version: int
    state: Any = None
    agents: Mapping[str, AgentStatus] = field(default_factory=dict)
    subtasks: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Effects:
    """The changes a batch makes, accumulated event by event (later events win)."""

    task: dict[str, Any] = field(default_factory=dict)  #: task columns to set
    log: dict[str, Any] = field(default_factory=dict)  #: ``state`` / ``state_version``
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)  #: agent id -> columns
    subtasks: dict[str, bool] = field(default_factory=dict)  #: subtask id -> done


def checked_data(index: int, event: EventIn, *, server: bool = False) -> dict[str, Any]:
    """The event's data validated against its type; a refused event names ``events.N``.

    ``server``: the server itself writes it, so the server-only types are allowed.
    """
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


def is_read_free(events: Sequence[EventIn]) -> bool:
    """Whether a publisher's batch needs nothing read before it is written: new events (no
    ids to look up) of :data:`READ_FREE_EVENTS` types only."""
    return bool(events) and all(e.id is None and e.event_type in READ_FREE_EVENTS for e in events)


def progress_changes(
    changes: dict[str, Any], kind: WebSocketEventType, data: Mapping[str, Any]
) -> None:
    """Put what a progress or confidence event sets on the task into ``changes``."""
    if kind == E.PROGRESS_UPDATE:
        changes["progress"] = data["progress"]
        if data.get("confidence") is not None:
            changes["confidence"] = data["confidence"]
    elif kind == E.CONFIDENCE_UPDATE:
        changes["confidence"] = data["confidence"]


def apply_event(
    facts: Facts,
    effects: Effects,
    kind: WebSocketEventType,
    data: dict[str, Any],
    *,
    prefix: str,
    now: datetime,
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Apply one event: record its changes in ``effects`` and update ``facts`` (so the next
    event of the batch sees them); return its data as stored (``version``, ``previous``,
    ``section_id``, ``reopened_from`` added). ``run_id`` is the event's run (its envelope's).

    Raises:
        InvalidInputError: a refused status move, a patch that does not apply, a snapshot or
            patch that would make the state larger than ``max_state_bytes``, an unknown agent,
            a subtask that is not in the task (``field`` names it under ``prefix``).
    """
    if kind in (E.PROGRESS_UPDATE, E.CONFIDENCE_UPDATE):
        progress_changes(effects.task, kind, data)
    elif kind in STATUS_EVENTS:
        _move_status(facts, effects, kind, data, prefix, now, run_id)
    elif kind == E.AGENT_STATUS_CHANGE:
        _change_agent(facts, effects, data, prefix, now)
    elif kind == E.STATE_SNAPSHOT:
        size = len(orjson.dumps(data["snapshot"]))  # storable: orjson writes it
        if size > max_state_bytes:
            field = f"{prefix}.data.snapshot"
            raise InvalidInputError(
                f"{field}: {size} bytes, more than the shared state's limit of {max_state_bytes}",
                field=field,
            )
        _set_state(facts, effects, data["snapshot"])
        data["version"] = facts.state_version
    elif kind == E.STATE_PATCH:
        document = facts.state if facts.state is not None else {}
        try:
            patched = apply_patch(document, data["patch"], max_bytes=max_state_bytes)
        except PatchError as exc:
            field = f"{prefix}.data.patch"
            if exc.index is not None:
                field += f".{exc.index}"
            raise InvalidInputError(
                f"{field}: does not apply to state version {facts.state_version}: {exc.reason}",
                field=field,
            ) from None
        _set_state(facts, effects, patched)
        data["version"] = facts.state_version
    elif kind == E.SUBTASK_UPDATED and data.get("done") is not None:
        section_id = facts.subtasks.get(data["subtask_id"])
        if section_id is None:
            raise InvalidInputError(
                f"{prefix}.data.subtask_id: subtask {data['subtask_id']!r} is not in this task",
                field=f"{prefix}.data.subtask_id",
            )
        effects.subtasks[data["subtask_id"]] = bool(data["done"])
        data["section_id"] = section_id
    return data


def _set_state(facts: Facts, effects: Effects, document: Any) -> None:
    facts.state = document
    facts.state_version += 1
    effects.log.update(state=document, state_version=facts.state_version)


def _move_status(
    facts: Facts,
    effects: Effects,
    kind: WebSocketEventType,
    data: dict[str, Any],
    prefix: str,
    now: datetime,
    run_id: str | None,
) -> None:
    """Move the task through the state machine; a refused move names ``events.N``."""
    new = TaskStatus(STATUS_EVENTS[kind])
    reopened: TaskStatus | None = None
    try:
        if kind == E.TASK_STARTED:
            reopened = check_run_start(facts.task_id, facts.status, run_id)
        else:
            check_transition(facts.task_id, facts.status, new)
    except ConflictError as exc:
        raise InvalidInputError(f"{prefix}: {exc.detail}", field=prefix) from None
    if reopened is not None:
        data["reopened_from"] = reopened.value
        effects.task["progress"] = 0.0
    stamps = status_timestamps(facts.status, new, started_at=facts.started_at, now=now)
    for name, value in stamps.items():
        effects.task[name] = value
        if name == "started_at" and isinstance(value, datetime):
            facts.started_at = value
    facts.status = new
    effects.task["status"] = new.value
    if new == TaskStatus.COMPLETED:
        effects.task["progress"] = 1.0
    if data.get("result") is not None:
        effects.task["result"] = data["result"]
    elif kind == E.TASK_FAILED and data.get("error"):
        effects.task["result"] = {"error": data["error"]}


def _change_agent(
    facts: Facts, effects: Effects, data: dict[str, Any], prefix: str, now: datetime
) -> None:
    """Set the agent's status (and ``data["previous"]``); an unknown agent is refused."""
    agent_id = data["agent_id"]
    previous = facts.agents.get(agent_id)
    if previous is None:
        raise InvalidInputError(
            f"{prefix}.data.agent_id: agent {agent_id!r} does not exist",
            field=f"{prefix}.data.agent_id",
        )
    data["previous"] = data.get("previous") or previous.value
    status = AgentStatus(data["status"])
    changes: dict[str, Any] = {"status": status.value, "last_seen_at": now, "updated_at": now}
    if status == AgentStatus.WORKING:
        changes["current_task_id"] = facts.task_id
    effects.agents.setdefault(agent_id, {}).update(changes)
    facts.agents = {**facts.agents, agent_id: status}
