"""The pure domain rules of the log (no server, no database): what an event does to its task
(``taskline.domain.effects``) and which events a REST change logs (``taskline.domain.changes``).
"""

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskline.domain import changes
from taskline.domain.effects import (
    READ_FREE_EVENTS,
    Effects,
    Facts,
    apply_event,
    checked_data,
    is_read_free,
    progress_changes,
)
from taskline.domain.errors import InvalidInputError
from taskline.domain.events import (
    CONNECTION_EVENTS,
    LOGGED_EVENTS,
    REQUEST_EVENTS,
    SERVER_ONLY_EVENTS,
    STATUS_EVENTS,
    EventIn,
    WebSocketEventType,
)
from taskline.domain.models import Subtask, Task
from taskline.domain.status import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    AgentStatus,
    Priority,
    TaskStatus,
)

E = WebSocketEventType
S = TaskStatus
TASK_ID = "task_1"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)

#: Valid data for every type a publisher may log (the smallest a schema accepts).
SAMPLE_DATA: dict[WebSocketEventType, dict[str, Any]] = {
    E.TASK_UPDATED: {"changes": ["title"]},
    E.MESSAGE_START: {"message_id": "m1"},
    E.MESSAGE_DELTA: {"message_id": "m1", "delta": "Hel"},
    E.MESSAGE_END: {"message_id": "m1"},
    E.TOOL_CALL_START: {"tool_call_id": "c1", "name": "grep"},
    E.TOOL_CALL_ARGS: {"tool_call_id": "c1", "delta": "{}"},
    E.TOOL_CALL_END: {"tool_call_id": "c1", "duration_ms": 12.5},
    E.TOOL_CALL_RESULT: {"tool_call_id": "c1", "content": "3 matches"},
    E.STEP_START: {"name": "read"},
    E.STEP_END: {"name": "read"},
    E.PROGRESS_UPDATE: {"progress": 0.5, "confidence": 0.7},
    E.CONFIDENCE_UPDATE: {"confidence": 0.3},
    E.ERROR: {"message": "disk full"},
    E.CUSTOM: {"name": "note", "value": {"k": 1}},
}


def make_facts(
    status: TaskStatus = S.PENDING,
    *,
    started_at: datetime | None = None,
    state_version: int = 0,
    state: Any = None,
    agents: Mapping[str, AgentStatus] | None = None,
    subtasks: Mapping[str, str] | None = None,
) -> Facts:
    return Facts(
        TASK_ID,
        status,
        started_at,
        state_version,
        state,
        agents={} if agents is None else agents,
        subtasks={} if subtasks is None else subtasks,
    )


def apply(
    facts: Facts,
    effects: Effects,
    kind: WebSocketEventType,
    data: dict[str, Any] | None = None,
    *,
    index: int = 0,
    now: datetime = NOW,
) -> dict[str, Any]:
    """What the recorder does with one event: check its data, then apply it."""
    checked = checked_data(index, EventIn(event_type=kind, data=data or {}))
    return apply_event(facts, effects, kind, checked, prefix=f"events.{index}", now=now)


def snapshot(facts: Facts, effects: Effects) -> tuple[Any, ...]:
    """Everything ``apply_event`` may change, copied, to prove that a refusal changed nothing."""
    return copy.deepcopy(
        (
            facts.status,
            facts.started_at,
            facts.state_version,
            facts.state,
            dict(facts.agents),
            effects.task,
            effects.log,
            effects.agents,
            effects.subtasks,
        )
    )


def make_task(status: TaskStatus, *, result: Any = None, title: str = "Write the report") -> Task:
    return Task(
        id=TASK_ID,
        title=title,
        description="",
        status=status,
        priority=Priority.MEDIUM,
        progress=0.0,
        confidence=None,
        assigned_agent_id=None,
        tags=[],
        result=result,
        created_at=EARLIER,
        updated_at=NOW,
        started_at=None,
        completed_at=None,
        sections=[],
    )


def allowed(current: TaskStatus, requested: TaskStatus) -> bool:
    return requested == current or requested in TRANSITIONS[current]


# --- checked_data -------------------------------------------------------------------------------


def test_checked_data_returns_the_data_normalised() -> None:
    """Valid data comes back with the schema's optional fields filled in."""
    event = EventIn(event_type=E.PROGRESS_UPDATE, data={"progress": 0.5})
    assert checked_data(0, event) == {"progress": 0.5, "message": None, "confidence": None}


def test_checked_data_keeps_unknown_keys() -> None:
    """Keys the schema does not name are kept (agents may add context)."""
    event = EventIn(event_type=E.STEP_START, data={"name": "read", "files": 3})
    assert checked_data(0, event) == {"name": "read", "files": 3}


def test_checked_data_names_the_bad_field_under_its_event() -> None:
    """Bad data is refused naming ``events.N.data.<field>``."""
    event = EventIn(event_type=E.PROGRESS_UPDATE, data={"progress": 2})
    with pytest.raises(InvalidInputError) as refused:
        checked_data(4, event)
    assert refused.value.field == "events.4.data.progress"
    assert refused.value.detail.startswith("events.4.data.progress: ")


def test_checked_data_names_a_missing_field() -> None:
    """A required field that is absent is named too."""
    with pytest.raises(InvalidInputError) as refused:
        checked_data(1, EventIn(event_type=E.AGENT_STATUS_CHANGE, data={"status": "idle"}))
    assert refused.value.field == "events.1.data.agent_id"


@pytest.mark.parametrize("kind", sorted(CONNECTION_EVENTS))
def test_connection_messages_cannot_be_logged(kind: WebSocketEventType) -> None:
    """A connection message is refused as an event, on its ``event_type``, even from the server."""
    for server in (False, True):
        with pytest.raises(InvalidInputError) as refused:
            checked_data(2, EventIn(event_type=kind), server=server)
        assert refused.value.field == "events.2.event_type"
        assert "is a connection message" in refused.value.detail


@pytest.mark.parametrize("kind", sorted(SERVER_ONLY_EVENTS))
def test_server_only_events_are_refused_from_publishers(kind: WebSocketEventType) -> None:
    """``task_created`` / ``task_deleted`` and the ``request.*`` events (a request's life,
    logged by the requests service) are refused from publishers, allowed to the server."""
    event = EventIn(event_type=kind)
    with pytest.raises(InvalidInputError) as refused:
        checked_data(0, event)
    assert refused.value.field == "events.0.event_type"
    assert "is written by the server" in refused.value.detail
    expected = {} if kind in REQUEST_EVENTS else {"task": None, "changes": []}
    assert checked_data(0, event, server=True) == expected


def test_the_server_only_events_are_the_task_and_request_ones() -> None:
    """Exactly these types are the server's own."""
    assert {
        E.TASK_CREATED,
        E.TASK_DELETED,
        E.REQUEST_OPENED,
        E.REQUEST_ANSWERED,
        E.REQUEST_EXPIRED,
        E.REQUEST_CANCELLED,
    } == SERVER_ONLY_EVENTS


def test_checked_data_leaves_the_event_as_it_was() -> None:
    """The data returned is a new dict; the event's own data is not touched."""
    event = EventIn(event_type=E.PROGRESS_UPDATE, data={"progress": 0.5})
    data = checked_data(0, event)
    data["progress"] = 0.9
    assert event.data == {"progress": 0.5}


# --- is_read_free -------------------------------------------------------------------------------


def test_a_batch_of_new_read_free_events_is_read_free() -> None:
    """New events (no ids) of read-free types only need nothing read first."""
    events = [EventIn(event_type=kind, data=data) for kind, data in SAMPLE_DATA.items()]
    assert is_read_free(events)


def test_an_empty_batch_is_not_read_free() -> None:
    """Nothing to write is not the read-free path (the reading path handles it)."""
    assert not is_read_free([])


def test_an_event_id_makes_the_batch_read() -> None:
    """An event with an id must be looked up (it may be a re-send), so the batch is read."""
    batch = [
        EventIn(event_type=E.PROGRESS_UPDATE, data={"progress": 0.1}),
        EventIn(id="evt_1", event_type=E.PROGRESS_UPDATE, data={"progress": 0.2}),
    ]
    assert not is_read_free(batch)


@pytest.mark.parametrize(
    "kind",
    sorted(
        {*STATUS_EVENTS, *SERVER_ONLY_EVENTS}
        | {E.AGENT_STATUS_CHANGE, E.STATE_SNAPSHOT, E.STATE_PATCH, E.SUBTASK_UPDATED}
    ),
)
def test_one_event_that_needs_a_read_makes_the_batch_read(kind: WebSocketEventType) -> None:
    """Status moves, agent status, shared state, subtasks and server-only types need a read."""
    assert kind not in READ_FREE_EVENTS
    batch = [
        EventIn(event_type=E.PROGRESS_UPDATE, data={"progress": 0.1}),
        EventIn(event_type=kind),
    ]
    assert not is_read_free(batch)


def test_every_read_free_type_has_sample_data() -> None:
    """The samples below cover every read-free type (a new type must be added to them)."""
    assert set(SAMPLE_DATA) == set(READ_FREE_EVENTS)
    assert READ_FREE_EVENTS <= LOGGED_EVENTS


@pytest.mark.parametrize("kind", sorted(READ_FREE_EVENTS))
def test_a_read_free_event_changes_nothing_but_progress(kind: WebSocketEventType) -> None:
    """What the read-free path skips is truly nothing: such an event reads no facts and
    changes only what ``progress_changes`` says, and its data is stored as checked."""
    facts = make_facts(S.IN_PROGRESS, started_at=EARLIER, state_version=3, state={"a": 1})
    before = snapshot(facts, Effects())
    effects = Effects()
    checked = checked_data(0, EventIn(event_type=kind, data=SAMPLE_DATA[kind]))
    stored = apply_event(facts, effects, kind, dict(checked), prefix="events.0", now=NOW)
    expected: dict[str, Any] = {}
    progress_changes(expected, kind, checked)
    assert stored == checked
    assert effects.task == expected
    assert (effects.log, effects.agents, effects.subtasks) == ({}, {}, {})
    assert snapshot(facts, Effects()) == before


# --- progress and confidence --------------------------------------------------------------------


def test_progress_with_confidence_sets_both() -> None:
    """``progress_update`` sets the progress, and the confidence when it carries one."""
    effects = Effects()
    apply(make_facts(), effects, E.PROGRESS_UPDATE, {"progress": 0.4, "confidence": 0.8})
    assert effects.task == {"progress": 0.4, "confidence": 0.8}


def test_progress_without_confidence_keeps_the_confidence() -> None:
    """A ``progress_update`` without confidence leaves the task's confidence alone."""
    changed: dict[str, Any] = {}
    progress_changes(changed, E.PROGRESS_UPDATE, {"progress": 0.4, "confidence": None})
    assert changed == {"progress": 0.4}


def test_confidence_update_sets_only_the_confidence() -> None:
    """``confidence_update`` sets the confidence and nothing else."""
    changed: dict[str, Any] = {}
    progress_changes(changed, E.CONFIDENCE_UPDATE, {"confidence": 0.25})
    assert changed == {"confidence": 0.25}


def test_other_events_set_no_figures() -> None:
    """``progress_changes`` ignores every other type, even data that looks like progress."""
    changed: dict[str, Any] = {}
    progress_changes(changed, E.CUSTOM, {"progress": 0.4, "confidence": 0.1})
    assert changed == {}


def test_later_figures_win_within_a_batch() -> None:
    """Of several progress and confidence events in one batch, the last of each wins."""
    facts, effects = make_facts(), Effects()
    apply(facts, effects, E.PROGRESS_UPDATE, {"progress": 0.2, "confidence": 0.9})
    apply(facts, effects, E.CONFIDENCE_UPDATE, {"confidence": 0.6}, index=1)
    apply(facts, effects, E.PROGRESS_UPDATE, {"progress": 0.5}, index=2)
    assert effects.task == {"progress": 0.5, "confidence": 0.6}


# --- status events ------------------------------------------------------------------------------


@pytest.mark.parametrize("current", list(TaskStatus))
@pytest.mark.parametrize("kind", list(STATUS_EVENTS))
def test_each_status_event_follows_the_state_machine(
    current: TaskStatus, kind: WebSocketEventType
) -> None:
    """A status event moves the task to its status exactly when the state machine allows it."""
    target = S(STATUS_EVENTS[kind])
    facts, effects = make_facts(current, started_at=EARLIER), Effects()
    if allowed(current, target):
        apply(facts, effects, kind)
        assert facts.status == target
        assert effects.task["status"] == target.value
    else:
        before = snapshot(facts, effects)
        with pytest.raises(InvalidInputError):
            apply(facts, effects, kind)
        assert snapshot(facts, effects) == before


def test_a_refused_move_names_the_event() -> None:
    """A move the state machine refuses is an InvalidInputError on ``events.N`` saying why."""
    facts, effects = make_facts(S.PENDING), Effects()
    with pytest.raises(InvalidInputError) as refused:
        apply(facts, effects, E.TASK_COMPLETED, index=3)
    assert refused.value.field == "events.3"
    assert refused.value.detail == (
        "events.3: task 'task_1' cannot go from 'pending' to 'completed'; "
        "allowed from 'pending': in_progress, cancelled"
    )
    assert facts.status == S.PENDING and effects.task == {}


def test_the_first_start_stamps_started_at() -> None:
    """Entering ``in_progress`` for the first time stamps ``started_at`` with the event's time."""
    facts, effects = make_facts(S.PENDING), Effects()
    apply(facts, effects, E.TASK_STARTED)
    assert effects.task == {"status": "in_progress", "started_at": NOW}
    assert facts.started_at == NOW


def test_a_task_that_started_before_keeps_its_started_at() -> None:
    """A task with a ``started_at`` is not stamped again when it goes back to work."""
    facts, effects = make_facts(S.PAUSED, started_at=EARLIER), Effects()
    apply(facts, effects, E.TASK_RESUMED)
    assert effects.task == {"status": "in_progress"}
    assert facts.started_at == EARLIER


def test_started_at_is_stamped_once_per_batch() -> None:
    """Start, pause, resume in one batch: ``started_at`` is the first start's time."""
    facts, effects = make_facts(S.PENDING), Effects()
    apply(facts, effects, E.TASK_STARTED, now=EARLIER)
    apply(facts, effects, E.TASK_PAUSED, index=1)
    apply(facts, effects, E.TASK_RESUMED, index=2)
    assert effects.task["started_at"] == EARLIER
    assert facts.started_at == EARLIER


@pytest.mark.parametrize("kind", [E.TASK_COMPLETED, E.TASK_FAILED, E.TASK_CANCELLED])
def test_finishing_stamps_completed_at(kind: WebSocketEventType) -> None:
    """Entering a terminal status stamps ``completed_at``."""
    facts, effects = make_facts(S.IN_PROGRESS, started_at=EARLIER), Effects()
    apply(facts, effects, kind)
    assert S(STATUS_EVENTS[kind]) in TERMINAL_STATUSES
    assert effects.task["completed_at"] == NOW


def test_completing_sets_progress_to_one() -> None:
    """``task_completed`` sets the progress to 1.0, over a progress set earlier in the batch."""
    facts, effects = make_facts(S.IN_PROGRESS, started_at=EARLIER), Effects()
    apply(facts, effects, E.PROGRESS_UPDATE, {"progress": 0.3})
    apply(facts, effects, E.TASK_COMPLETED, index=1)
    assert effects.task == {"progress": 1.0, "status": "completed", "completed_at": NOW}


@pytest.mark.parametrize("kind", [E.TASK_FAILED, E.TASK_CANCELLED])
def test_failing_or_cancelling_keeps_the_progress(kind: WebSocketEventType) -> None:
    """Only completing sets the progress; failing or cancelling leaves it where it was."""
    effects = Effects()
    apply(make_facts(S.IN_PROGRESS, started_at=EARLIER), effects, kind)
    assert "progress" not in effects.task


def test_retrying_a_failed_task_clears_completed_at() -> None:
    """``failed`` → ``in_progress`` clears ``completed_at`` and keeps ``started_at``."""
    facts, effects = make_facts(S.FAILED, started_at=EARLIER), Effects()
    apply(facts, effects, E.TASK_STARTED)
    assert effects.task == {"status": "in_progress", "completed_at": None}


def test_staying_in_the_same_status_is_accepted_and_stamps_nothing() -> None:
    """A status event for the status the task is in is an idempotent no-op (no stamps)."""
    facts, effects = make_facts(S.COMPLETED, started_at=EARLIER), Effects()
    apply(facts, effects, E.TASK_COMPLETED)
    assert effects.task == {"status": "completed", "progress": 1.0}


def test_resuming_a_pending_task_starts_it() -> None:
    """The target status decides, not the event's name: ``task_resumed`` on a pending task
    is accepted as a start."""
    facts, effects = make_facts(S.PENDING), Effects()
    apply(facts, effects, E.TASK_RESUMED)
    assert effects.task == {"status": "in_progress", "started_at": NOW}


def test_a_later_event_sees_the_status_an_earlier_one_set() -> None:
    """Facts follow the batch: pending → started → completed is accepted in one batch,
    though pending → completed alone is refused."""
    facts, effects = make_facts(S.PENDING), Effects()
    apply(facts, effects, E.TASK_STARTED)
    apply(facts, effects, E.TASK_COMPLETED, index=1)
    assert facts.status == S.COMPLETED
    assert effects.task == {
        "status": "completed",
        "started_at": NOW,
        "completed_at": NOW,
        "progress": 1.0,
    }


def test_the_result_of_a_status_event_is_the_tasks_result() -> None:
    """A status event's ``result`` becomes the task's result."""
    effects = Effects()
    apply(
        make_facts(S.IN_PROGRESS, started_at=EARLIER),
        effects,
        E.TASK_COMPLETED,
        {"result": {"report": "ok"}},
    )
    assert effects.task["result"] == {"report": "ok"}


def test_a_failure_without_result_records_its_error() -> None:
    """``task_failed`` with an ``error`` and no result stores ``{"error": ...}`` as the result."""
    effects = Effects()
    apply(make_facts(S.IN_PROGRESS), effects, E.TASK_FAILED, {"error": "disk full"})
    assert effects.task["result"] == {"error": "disk full"}


def test_a_failures_result_wins_over_its_error() -> None:
    """``task_failed`` with both a result and an error stores the result."""
    effects = Effects()
    apply(make_facts(S.IN_PROGRESS), effects, E.TASK_FAILED, {"error": "x", "result": [1, 2]})
    assert effects.task["result"] == [1, 2]


@pytest.mark.parametrize(
    ("current", "kind", "data"),
    [
        (S.IN_PROGRESS, E.TASK_FAILED, {}),
        (S.IN_PROGRESS, E.TASK_FAILED, {"error": ""}),
        (S.IN_PROGRESS, E.TASK_CANCELLED, {"error": "stopped"}),
        (S.IN_PROGRESS, E.TASK_COMPLETED, {"reason": "done"}),
    ],
)
def test_no_result_leaves_the_result_alone(
    current: TaskStatus, kind: WebSocketEventType, data: dict[str, Any]
) -> None:
    """Without a result (and but for a failure's non-empty error) the task's result is kept."""
    effects = Effects()
    apply(make_facts(current), effects, kind, data)
    assert "result" not in effects.task


# --- agent status -------------------------------------------------------------------------------


def test_an_agent_status_change_sets_the_agent_and_records_previous() -> None:
    """``agent_status_change`` sets the agent's status and last seen, and the stored event
    records the status it had (``previous``)."""
    facts, effects = make_facts(agents={"agent_a": AgentStatus.WORKING}), Effects()
    stored = apply(facts, effects, E.AGENT_STATUS_CHANGE, {"agent_id": "agent_a", "status": "idle"})
    assert stored["previous"] == "working"
    assert effects.agents == {"agent_a": {"status": "idle", "last_seen_at": NOW, "updated_at": NOW}}
    assert facts.agents["agent_a"] == AgentStatus.IDLE


def test_working_makes_this_task_the_agents_current_one() -> None:
    """An agent set ``working`` gets this task as its ``current_task_id``."""
    effects = Effects()
    apply(
        make_facts(agents={"agent_a": AgentStatus.IDLE}),
        effects,
        E.AGENT_STATUS_CHANGE,
        {"agent_id": "agent_a", "status": "working"},
    )
    assert effects.agents["agent_a"]["current_task_id"] == TASK_ID


@pytest.mark.parametrize("status", [s for s in AgentStatus if s != AgentStatus.WORKING])
def test_other_statuses_leave_the_current_task_alone(status: AgentStatus) -> None:
    """Only ``working`` touches ``current_task_id``; other statuses neither set nor clear it."""
    effects = Effects()
    apply(
        make_facts(agents={"agent_a": AgentStatus.WORKING}),
        effects,
        E.AGENT_STATUS_CHANGE,
        {"agent_id": "agent_a", "status": status.value},
    )
    assert "current_task_id" not in effects.agents["agent_a"]


def test_a_previous_sent_by_the_publisher_is_kept() -> None:
    """A ``previous`` the publisher sent is stored as sent."""
    stored = apply(
        make_facts(agents={"agent_a": AgentStatus.IDLE}),
        Effects(),
        E.AGENT_STATUS_CHANGE,
        {"agent_id": "agent_a", "status": "working", "previous": "offline"},
    )
    assert stored["previous"] == "offline"


def test_an_unknown_agent_is_refused() -> None:
    """An agent the facts do not hold does not exist: refused on ``events.N.data.agent_id``."""
    facts, effects = make_facts(agents={"agent_a": AgentStatus.IDLE}), Effects()
    with pytest.raises(InvalidInputError) as refused:
        apply(
            facts, effects, E.AGENT_STATUS_CHANGE, {"agent_id": "ghost", "status": "idle"}, index=2
        )
    assert refused.value.field == "events.2.data.agent_id"
    assert refused.value.detail == "events.2.data.agent_id: agent 'ghost' does not exist"
    assert effects.agents == {}


def test_a_later_agent_change_sees_the_earlier_one() -> None:
    """Two changes of one agent in a batch: the second's ``previous`` is the first's status,
    and the agent's columns merge (later values win)."""
    agents = {"agent_a": AgentStatus.IDLE}
    facts, effects = make_facts(agents=agents), Effects()
    apply(facts, effects, E.AGENT_STATUS_CHANGE, {"agent_id": "agent_a", "status": "working"})
    later = NOW + timedelta(seconds=1)
    second = apply(
        facts,
        effects,
        E.AGENT_STATUS_CHANGE,
        {"agent_id": "agent_a", "status": "paused"},
        index=1,
        now=later,
    )
    assert second["previous"] == "working"
    assert effects.agents["agent_a"] == {
        "status": "paused",
        "last_seen_at": later,
        "updated_at": later,
        "current_task_id": TASK_ID,
    }
    assert agents == {"agent_a": AgentStatus.IDLE}  # the caller's mapping is not changed


# --- shared state -------------------------------------------------------------------------------


def test_a_snapshot_replaces_the_state_and_bumps_the_version() -> None:
    """``state.snapshot`` sets the state, bumps the version and stamps it on the event,
    over any version the publisher sent."""
    facts, effects = make_facts(state_version=4, state={"old": True}), Effects()
    stored = apply(facts, effects, E.STATE_SNAPSHOT, {"snapshot": {"a": 1}, "version": 99})
    assert stored["version"] == 5
    assert effects.log == {"state": {"a": 1}, "state_version": 5}
    assert (facts.state, facts.state_version) == ({"a": 1}, 5)


def test_a_patch_applies_to_the_state_and_bumps_the_version() -> None:
    """``state.patch`` applies RFC 6902 to the state and bumps the version; the document it
    was given is not changed in place."""
    document = {"files": ["a.md"], "done": 0}
    facts, effects = make_facts(state_version=2, state=document), Effects()
    patch = [
        {"op": "add", "path": "/files/-", "value": "b.md"},
        {"op": "replace", "path": "/done", "value": 1},
    ]
    stored = apply(facts, effects, E.STATE_PATCH, {"patch": patch})
    expected = {"files": ["a.md", "b.md"], "done": 1}
    assert stored["version"] == 3
    assert effects.log == {"state": expected, "state_version": 3}
    assert facts.state == expected
    assert document == {"files": ["a.md"], "done": 0}


def test_a_patch_on_no_state_applies_to_an_empty_document() -> None:
    """A task whose state was never set is patched as ``{}``."""
    facts, effects = make_facts(), Effects()
    apply(facts, effects, E.STATE_PATCH, {"patch": [{"op": "add", "path": "/a", "value": 1}]})
    assert effects.log == {"state": {"a": 1}, "state_version": 1}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/a/b", "value": 1},
        {"op": "test", "path": "/a", "value": 2},
    ],
)
def test_a_patch_that_does_not_apply_is_refused(operation: dict[str, Any]) -> None:
    """A patch that does not apply is refused on ``events.N.data.patch.I`` (the operation),
    naming the state version it was tried on; the state and its version stay as they were."""
    facts, effects = make_facts(state_version=7, state={"a": 1}), Effects()
    with pytest.raises(InvalidInputError) as refused:
        apply(facts, effects, E.STATE_PATCH, {"patch": [operation]}, index=1)
    assert refused.value.field == "events.1.data.patch.0"
    assert refused.value.detail.startswith(
        "events.1.data.patch.0: does not apply to state version 7"
    )
    assert (facts.state, facts.state_version, effects.log) == ({"a": 1}, 7, {})


def test_a_patch_applies_to_the_snapshot_before_it_in_the_batch() -> None:
    """Snapshot then patch in one batch: the patch sees the snapshot; versions follow on."""
    facts, effects = make_facts(state_version=1, state={"x": 0}), Effects()
    first = apply(facts, effects, E.STATE_SNAPSHOT, {"snapshot": {"a": 1}})
    second = apply(
        facts, effects, E.STATE_PATCH, {"patch": [{"op": "add", "path": "/b", "value": 2}]}, index=1
    )
    assert (first["version"], second["version"]) == (2, 3)
    assert effects.log == {"state": {"a": 1, "b": 2}, "state_version": 3}


# --- subtasks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("done", [True, False])
def test_a_subtask_update_with_done_ticks_it(done: bool) -> None:
    """``subtask_updated`` with ``done`` ticks (or unticks) the subtask; the stored event
    records its ``section_id``."""
    effects = Effects()
    stored = apply(
        make_facts(subtasks={"sub_1": "sec_1"}),
        effects,
        E.SUBTASK_UPDATED,
        {"subtask_id": "sub_1", "done": done},
    )
    assert effects.subtasks == {"sub_1": done}
    assert stored["section_id"] == "sec_1"


def test_ticking_a_subtask_not_in_the_task_is_refused() -> None:
    """A subtask the task does not hold is refused on ``events.N.data.subtask_id``."""
    facts, effects = make_facts(subtasks={"sub_1": "sec_1"}), Effects()
    with pytest.raises(InvalidInputError) as refused:
        apply(facts, effects, E.SUBTASK_UPDATED, {"subtask_id": "sub_9", "done": True}, index=5)
    assert refused.value.field == "events.5.data.subtask_id"
    assert refused.value.detail == "events.5.data.subtask_id: subtask 'sub_9' is not in this task"
    assert effects.subtasks == {}


def test_a_subtask_update_without_done_changes_nothing() -> None:
    """Without ``done`` (a rename, say) the event changes no subtask and is not checked
    against the task's subtasks."""
    effects = Effects()
    stored = apply(
        make_facts(), effects, E.SUBTASK_UPDATED, {"subtask_id": "sub_9", "title": "Renamed"}
    )
    assert effects.subtasks == {}
    assert stored["section_id"] is None


def test_later_ticks_of_a_subtask_win() -> None:
    """Tick then untick one subtask in a batch: the last one is what is written."""
    facts, effects = make_facts(subtasks={"sub_1": "sec_1"}), Effects()
    apply(facts, effects, E.SUBTASK_UPDATED, {"subtask_id": "sub_1", "done": True})
    apply(facts, effects, E.SUBTASK_UPDATED, {"subtask_id": "sub_1", "done": False}, index=1)
    assert effects.subtasks == {"sub_1": False}


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from(list(TaskStatus)),
    started=st.booleans(),
    kinds=st.lists(st.sampled_from(list(STATUS_EVENTS)), max_size=12),
)
def test_status_events_follow_the_state_machine_or_are_refused(
    start: TaskStatus, started: bool, kinds: list[WebSocketEventType]
) -> None:
    """Any sequence of status events: each is accepted exactly when the state machine allows
    it, a refused one changes nothing, the facts hold the last accepted status, and the stamps
    agree with it (``completed_at`` set iff terminal, ``started_at`` the first start's time)."""
    facts = make_facts(start, started_at=EARLIER if started else None)
    effects = Effects()
    status, first_start, accepted = start, None, False
    for index, kind in enumerate(kinds):
        target = S(STATUS_EVENTS[kind])
        now = NOW + timedelta(seconds=index)
        if allowed(status, target):
            apply(facts, effects, kind, index=index, now=now)
            if target == S.IN_PROGRESS and status != target and first_start is None:
                first_start = now
            status, accepted = target, True
        else:
            before = snapshot(facts, effects)
            with pytest.raises(InvalidInputError) as refused:
                apply(facts, effects, kind, index=index, now=now)
            assert refused.value.field == f"events.{index}"
            assert snapshot(facts, effects) == before
        assert facts.status == status
    assert effects.task.get("status") == (status.value if accepted else None)
    if "completed_at" in effects.task:
        assert (effects.task["completed_at"] is not None) == (status in TERMINAL_STATUSES)
    if started or first_start is None:
        assert "started_at" not in effects.task
    else:
        assert effects.task["started_at"] == first_start == facts.started_at


SET_KEY = st.tuples(st.sampled_from("abc"), st.integers(min_value=0, max_value=9))


@settings(max_examples=200, deadline=None)
@given(
    version=st.integers(min_value=0, max_value=1000),
    steps=st.lists(st.one_of(st.none(), SET_KEY), min_size=1, max_size=10),
)
def test_each_state_event_bumps_the_version_by_one(
    version: int, steps: list[tuple[str, int] | None]
) -> None:
    """Any mix of snapshots (``None``: reset to ``{}``) and patches (set one key): each is
    stamped with the next version, and the state is what the steps build."""
    facts, effects = make_facts(state_version=version), Effects()
    expected: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step is None:
            stored = apply(facts, effects, E.STATE_SNAPSHOT, {"snapshot": {}}, index=index)
            expected = {}
        else:
            key, value = step
            patch = [{"op": "add", "path": f"/{key}", "value": value}]
            stored = apply(facts, effects, E.STATE_PATCH, {"patch": patch}, index=index)
            expected[key] = value
        assert stored["version"] == version + index + 1
    assert effects.log == {"state": expected, "state_version": version + len(steps)}


# --- changes: the events a REST change logs -----------------------------------------------------


def test_a_created_task_logs_task_created_with_the_task() -> None:
    """``created`` is a ``task_created`` carrying the task as JSON."""
    task = make_task(S.PENDING)
    event = changes.created(task)
    assert event.event_type == E.TASK_CREATED
    assert event.data == {"task": task.model_dump(mode="json")}


def test_a_change_without_a_status_move_logs_task_updated_only() -> None:
    """A changed task whose status stayed logs one ``task_updated`` with the sorted changes."""
    before = make_task(S.IN_PROGRESS, title="Old title")
    after = make_task(S.IN_PROGRESS)
    events = changes.task_changed(after, before=before, changed={"title", "description"})
    assert [e.event_type for e in events] == [E.TASK_UPDATED]
    assert events[0].data == {
        "task": after.model_dump(mode="json"),
        "changes": ["description", "title"],
    }


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (S.PENDING, S.IN_PROGRESS, E.TASK_STARTED),
        (S.FAILED, S.IN_PROGRESS, E.TASK_STARTED),
        (S.PAUSED, S.IN_PROGRESS, E.TASK_RESUMED),
        (S.IN_PROGRESS, S.PAUSED, E.TASK_PAUSED),
        (S.IN_PROGRESS, S.COMPLETED, E.TASK_COMPLETED),
        (S.PAUSED, S.FAILED, E.TASK_FAILED),
        (S.PENDING, S.CANCELLED, E.TASK_CANCELLED),
    ],
)
def test_a_status_move_adds_its_status_event(
    before: TaskStatus, after: TaskStatus, kind: WebSocketEventType
) -> None:
    """A status move logs ``task_updated`` then its status event carrying the task's result;
    only paused → in_progress is a resume."""
    task = make_task(after, result={"n": 1})
    events = changes.task_changed(task, before=make_task(before), changed=["status"])
    assert [e.event_type for e in events] == [E.TASK_UPDATED, kind]
    assert events[1].data == {"result": {"n": 1}}


@pytest.mark.parametrize("before", sorted(TERMINAL_STATUSES))
def test_reopening_logs_no_status_event(before: TaskStatus) -> None:
    """Back to pending has no status event: the change logs ``task_updated`` alone."""
    events = changes.task_changed(
        make_task(S.PENDING), before=make_task(before), changed=["status"]
    )
    assert [e.event_type for e in events] == [E.TASK_UPDATED]


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b, targets in TRANSITIONS.items() for a in targets if a != S.PENDING],
)
def test_the_status_event_of_a_change_is_one_the_state_machine_accepts(
    before: TaskStatus, after: TaskStatus
) -> None:
    """For every allowed move, the status event a REST change logs, applied to the task as it
    was, is accepted and moves it to the same status."""
    events = changes.task_changed(make_task(after), before=make_task(before), changed=["status"])
    facts = make_facts(before, started_at=EARLIER)
    apply(facts, Effects(), events[1].event_type, dict(events[1].data))
    assert facts.status == after


def test_a_changed_subtask_logs_subtask_updated() -> None:
    """``subtask_changed`` names the subtask with its ``done`` and ``title``."""
    subtask = Subtask(id="sub_1", title="Read", done=True, notes="", position=0)
    event = changes.subtask_changed(subtask)
    assert event.event_type == E.SUBTASK_UPDATED
    assert event.data == {"subtask_id": "sub_1", "done": True, "title": "Read"}


def test_a_posted_message_logs_a_custom_task_message() -> None:
    """``message_posted`` is the ``custom`` event ``task_message`` carrying the message."""
    message = {"id": "msg_1", "content": "Please add tests", "author": "ana"}
    event = changes.message_posted(message)
    assert event.event_type == E.CUSTOM
    assert event.data == {"name": "task_message", "value": message}


def test_a_deleted_task_logs_task_deleted() -> None:
    """``deleted`` is a bare ``task_deleted``."""
    event = changes.deleted()
    assert event.event_type == E.TASK_DELETED and event.data == {}


def test_every_change_event_is_fit_for_the_log() -> None:
    """What ``changes`` builds passes the checks the server applies to its own events."""
    task = make_task(S.COMPLETED, result="done")
    events = [
        changes.created(make_task(S.PENDING)),
        *changes.task_changed(task, before=make_task(S.IN_PROGRESS), changed=["status"]),
        changes.subtask_changed(Subtask(id="s", title="t", done=False, notes="", position=1)),
        changes.message_posted({"id": "msg_1", "content": "hi"}),
        changes.deleted(),
    ]
    for index, event in enumerate(events):
        checked_data(index, event, server=True)
