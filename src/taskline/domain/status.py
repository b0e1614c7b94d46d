"""Task, agent and priority vocabularies, and the task status state machine."""

from enum import StrEnum

from taskline.domain.errors import InvalidTransitionError

__all__ = [
    "RUN_REOPENS",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "AgentStatus",
    "Priority",
    "TaskStatus",
    "allowed_transitions",
    "check_return",
    "check_run_start",
    "check_transition",
    "status_timestamps",
]


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    """How urgent a task is; ``rank`` orders them from low (0) to urgent (3)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class AgentStatus(StrEnum):
    """What an agent is doing."""

    IDLE = "idle"
    WORKING = "working"
    PAUSED = "paused"
    ERROR = "error"
    OFFLINE = "offline"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

#: Allowed status changes. Finished tasks can be reopened (back to pending); a failed one can
#: also be retried directly.
TRANSITIONS: dict[TaskStatus, tuple[TaskStatus, ...]] = {
    TaskStatus.PENDING: (TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED),
    TaskStatus.IN_PROGRESS: (
        TaskStatus.PAUSED,
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    ),
    TaskStatus.PAUSED: (TaskStatus.IN_PROGRESS, TaskStatus.FAILED, TaskStatus.CANCELLED),
    TaskStatus.COMPLETED: (TaskStatus.PENDING,),
    TaskStatus.FAILED: (TaskStatus.PENDING, TaskStatus.IN_PROGRESS),
    TaskStatus.CANCELLED: (TaskStatus.PENDING,),
}


#: Statuses a *new run* takes straight back to ``in_progress`` (a thread is multi-run: the
#: last run ended, the next one starts on the same task). Only a run's start, a
#: ``task_started`` event naming its run (``run_id``), takes this edge; every other change
#: reopens a finished task to ``pending`` (:data:`TRANSITIONS`). A cancelled task is not
#: reopened by a run: a person stopped it, and a person reopens it.
RUN_REOPENS = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})


def allowed_transitions(current: TaskStatus) -> tuple[TaskStatus, ...]:
    """Return the statuses a task in ``current`` may move to."""
    return TRANSITIONS[current]


def check_transition(task_id: str, current: TaskStatus, requested: TaskStatus) -> None:
    """Accept ``current → requested`` or raise :class:`InvalidTransitionError`.

    Staying in the same status is always accepted (an idempotent no-op).
    """
    if requested == current or requested in TRANSITIONS[current]:
        return
    raise InvalidTransitionError(
        task_id, current.value, requested.value, [s.value for s in TRANSITIONS[current]]
    )


def check_run_start(task_id: str, current: TaskStatus, run_id: str | None) -> TaskStatus | None:
    """Accept a run starting on a task in ``current`` (moving it to ``in_progress``); return
    the status it *reopens* (``completed`` or ``failed``: :data:`RUN_REOPENS`), or None when
    the start is an ordinary move. A start that names no run is an ordinary move.

    Raises:
        InvalidTransitionError: the task cannot start (cancelled, or finished and the start
            names no run).
    """
    if run_id and current in RUN_REOPENS:
        return current
    check_transition(task_id, current, TaskStatus.IN_PROGRESS)
    return None


def check_return(task_id: str, current: TaskStatus) -> None:
    """Accept a leased task going back to ``pending`` (released, or its lease ran out): from
    ``in_progress`` or ``paused``, the statuses a leased task is in. This move is the lease's
    alone; :data:`TRANSITIONS` does not offer it to other changes.

    Raises:
        InvalidTransitionError: the task is in another status.
    """
    if current in (TaskStatus.IN_PROGRESS, TaskStatus.PAUSED):
        return
    raise InvalidTransitionError(
        task_id, current.value, TaskStatus.PENDING.value, [s.value for s in TRANSITIONS[current]]
    )


def status_timestamps(
    current: TaskStatus | None, new: TaskStatus, *, started_at: object, now: object
) -> dict[str, object]:
    """Return the timestamp fields that entering ``new`` (from ``current``) sets.

    Entering ``in_progress`` the first time stamps ``started_at``; entering a terminal status
    stamps ``completed_at``; reopening (back to ``pending`` or ``in_progress``) clears it.
    """
    changes: dict[str, object] = {}
    if new == current:
        return changes
    if new == TaskStatus.IN_PROGRESS and started_at is None:
        changes["started_at"] = now
    if new in TERMINAL_STATUSES:
        changes["completed_at"] = now
    elif current in TERMINAL_STATUSES:
        changes["completed_at"] = None
    return changes
