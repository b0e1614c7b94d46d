"""A task's runs, derived from its log (no I/O here).

A *run* is one go of an agent at a task: it begins with a ``task_started`` naming it
(``run_id`` on the envelope; events ingested as AG-UI before run ids reached the envelope
keep it in ``data.run_id``) and ends with the task's ``task_completed``, ``task_failed`` or
``task_cancelled``. A thread is multi-run, so one task has any number of runs, one after the
other; a run started on a finished task reopened it (``reopened_from``).

:func:`runs_of` folds the log's run events (:data:`RUN_EVENT_TYPES`, in seq order) into one
:class:`RunSummary` per run, oldest first:

- a status event naming a run applies to that run; one naming none (a person's cancel, a
  REST status change) applies to the run still open, if any, and is otherwise left out;
- a ``task_started`` naming no run while none is open is a run without an id (a person
  started the task by hand);
- a ``task_started`` of a run already listed (a paused run's restart, a re-sent start) opens
  that run again instead of listing it twice;
- an ``error`` event with ``unserved: true`` (the AG-UI gateway's answer when no agent could
  serve a run) is a run of its own whose outcome is ``unserved``;
- a run that stopped to ask (a ``custom`` ``agui:RUN_FINISHED`` whose outcome is an
  interrupt: logged by the AG-UI gateway, or ingested) is ``interrupted``; when a person
  answers elsewhere (the inbox: ``request.answered`` of that run, or its cancel or expiry) it
  is ``running`` again, and its later events move it on as usual;
- a ``custom`` ``agui:RUN_STARTED`` with ``resumed_run`` (the AG-UI gateway's log of a
  ``RunAgentInput`` whose ``resume`` answered that run's interrupts) is a new run that
  continues that one: the interrupted run ends there, and its later events (the agent goes
  on under its own run id) count for the new run.

The list is as complete as the log: runs whose start was trimmed by retention
(``TASKLINE_RETAIN_EVENTS``) are not listed.
"""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from taskline.domain.events import WebSocketEventType, WebSocketMessage

__all__ = ["RUN_EVENT_TYPES", "RunOutcome", "RunSummary", "runs_of"]

E = WebSocketEventType


class RunOutcome(StrEnum):
    """How a run ended (or where it is, while it goes on)."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: nobody served it (no agent, a refused folder): the task was not touched
    UNSERVED = "unserved"
    #: it stopped to ask a person (an AG-UI interrupt) and waits for the answer, or ended
    #: there when a resuming run took over
    INTERRUPTED = "interrupted"


#: The event types a task's runs are derived from.
RUN_EVENT_TYPES = frozenset(
    {
        E.TASK_STARTED,
        E.TASK_PAUSED,
        E.TASK_RESUMED,
        E.TASK_COMPLETED,
        E.TASK_FAILED,
        E.TASK_CANCELLED,
        E.ERROR,
        E.CUSTOM,
        E.REQUEST_ANSWERED,
        E.REQUEST_CANCELLED,
        E.REQUEST_EXPIRED,
    }
)
_ANSWERS = frozenset({E.REQUEST_ANSWERED, E.REQUEST_CANCELLED, E.REQUEST_EXPIRED})

_ENDS = {
    E.TASK_COMPLETED: RunOutcome.COMPLETED,
    E.TASK_FAILED: RunOutcome.FAILED,
    E.TASK_CANCELLED: RunOutcome.CANCELLED,
}
_OPEN = frozenset({RunOutcome.RUNNING, RunOutcome.PAUSED, RunOutcome.INTERRUPTED})


class RunSummary(BaseModel):
    """One run of a task and its outcome."""

    run_id: str | None = Field(description="The run's id; null for a start by hand.")
    parent_run_id: str | None = None
    outcome: RunOutcome
    started_at: datetime
    ended_at: datetime | None = Field(default=None, description="Null while it goes on.")
    agent_id: str | None = Field(default=None, description="The agent that ran it, if known.")
    actor: str | None = Field(default=None, description="Who started it (as events record).")
    source: str | None = Field(default=None, description="Where its start came from.")
    reopened_from: str | None = Field(
        default=None, description="The status of the task it reopened (completed, failed)."
    )
    error: str | None = Field(default=None, description="Why it failed or was not served.")
    resumes: str | None = Field(
        default=None, description="The interrupted run whose interrupts it answered."
    )
    first_seq: int = Field(description="The seq of its start in the task's log.")
    last_seq: int = Field(description="The seq of the last event that changed it.")


def _run_id(message: WebSocketMessage) -> str | None:
    if message.run_id:
        return message.run_id
    named = message.data.get("run_id") if message.event_type == E.TASK_STARTED else None
    return named if isinstance(named, str) and named else None


def _agent(message: WebSocketMessage) -> str | None:
    if message.agent_id:
        return message.agent_id
    if message.actor and message.actor.startswith("agent:"):
        return message.actor.removeprefix("agent:")
    return None


def _interrupts(message: WebSocketMessage) -> bool:
    """Whether ``message`` logs an AG-UI ``RUN_FINISHED`` whose outcome is an interrupt."""
    if message.data.get("name") != "agui:RUN_FINISHED":
        return False
    value = message.data.get("value")
    outcome = value.get("outcome") if isinstance(value, dict) else None
    return isinstance(outcome, dict) and outcome.get("type") == "interrupt"


def runs_of(messages: Iterable[WebSocketMessage]) -> list[RunSummary]:
    """The runs of one task's log (see the module docstring), oldest first. ``messages``
    are its events in seq order; types outside :data:`RUN_EVENT_TYPES` are skipped."""
    runs: list[RunSummary] = []
    by_id: dict[str, RunSummary] = {}
    current: RunSummary | None = None  # the open run, if any
    for message in messages:
        kind, seq = message.event_type, message.seq or 0
        run_id = _run_id(message)
        if kind in _ANSWERS:
            asked = message.data.get("run_id")
            run = by_id.get(asked) if isinstance(asked, str) else None
            if run is not None and run.outcome == RunOutcome.INTERRUPTED and run.ended_at is None:
                run.outcome, run.last_seq = RunOutcome.RUNNING, seq  # answered: it goes on
            continue
        resumed = message.data.get("resumed_run")
        if kind == E.CUSTOM and not (run_id and run_id not in by_id and isinstance(resumed, str)):
            run = (by_id.get(run_id) if run_id else None) or current
            if run is not None and run.outcome in _OPEN and _interrupts(message):
                run.outcome, run.last_seq = RunOutcome.INTERRUPTED, seq
            continue
        if kind == E.CUSTOM and isinstance(resumed, str) and run_id:
            before = by_id.get(resumed)
            current = RunSummary(
                run_id=run_id,
                parent_run_id=message.parent_run_id,
                outcome=RunOutcome.RUNNING,
                started_at=message.timestamp,
                agent_id=before.agent_id if before is not None else None,
                actor=message.actor,
                source=message.source,
                resumes=resumed,
                first_seq=seq,
                last_seq=seq,
            )
            runs.append(current)
            by_id[run_id] = current
            if before is not None:
                before.ended_at, before.last_seq = message.timestamp, seq
                before.outcome = RunOutcome.INTERRUPTED
            by_id[resumed] = current  # the interrupted run's later events are this run's
            continue
        if kind == E.ERROR:
            if message.data.get("unserved") is True and run_id and run_id not in by_id:
                unserved = RunSummary(
                    run_id=run_id,
                    outcome=RunOutcome.UNSERVED,
                    started_at=message.timestamp,
                    ended_at=message.timestamp,
                    actor=message.actor,
                    source=message.source,
                    error=str(message.data.get("message") or "") or None,
                    first_seq=seq,
                    last_seq=seq,
                )
                runs.append(unserved)
                by_id[run_id] = unserved
            continue
        if kind == E.TASK_STARTED:
            known = by_id.get(run_id) if run_id else None
            if known is None and run_id is None and current is not None:
                known = current  # a start naming no run inside an open one
            if known is not None:
                known.outcome, known.ended_at, known.last_seq = RunOutcome.RUNNING, None, seq
                current = known
                continue
            reopened = message.data.get("reopened_from")
            current = RunSummary(
                run_id=run_id,
                parent_run_id=message.parent_run_id,
                outcome=RunOutcome.RUNNING,
                started_at=message.timestamp,
                agent_id=_agent(message),
                actor=message.actor,
                source=message.source,
                reopened_from=reopened if isinstance(reopened, str) else None,
                first_seq=seq,
                last_seq=seq,
            )
            runs.append(current)
            if run_id:
                by_id[run_id] = current
            continue
        run = (by_id.get(run_id) if run_id else None) or current
        if run is None or run.outcome not in _OPEN:
            continue
        run.last_seq = seq
        if kind == E.TASK_PAUSED:
            run.outcome = RunOutcome.PAUSED
        elif kind == E.TASK_RESUMED:
            run.outcome = RunOutcome.RUNNING
        elif kind in _ENDS:
            run.outcome, run.ended_at = _ENDS[kind], message.timestamp
            if kind == E.TASK_FAILED:
                error = message.data.get("error") or message.data.get("reason")
                run.error = str(error) if error else None
            if run is current:
                current = None
    return runs
