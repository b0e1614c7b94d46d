"""Leases: an agent claims a pending task and holds it for a while; what its writes may do.

A *claim* gives the oldest of the most urgent matching ``pending`` tasks to one agent, moves
it to ``in_progress`` assigned to that agent, and starts a *lease*: the agent holds the task
until ``expires_at`` (``lease_seconds`` from the claim, the default from the settings). Each
claim bumps the task's *fencing token* (``lease.token``: 1, 2, 3, … per task, never reused),
so every lease of a task is told apart from the ones before it, even the same agent's.

- Any event the holder publishes on the task renews the lease (``lease_seconds`` from then);
  so does an explicit renewal. A paused task's lease does not run out: resuming it renews it.
- Releasing gives the task back: ``pending``, and unassigned unless it was assigned to the
  holder before the claim (then it stays assigned to it).
- A lease that runs out (the holder stopped sending anything) gives the task back the same
  way; the server logs why (who held it, since when it expired).
- Finishing the task (completed, failed, cancelled) ends the lease; so does a person moving
  it to another agent. When the holder did not end it itself (it ran out, or a person took
  the task away) the agent is remembered as the one that *lost* it.

**Fencing** (:func:`fence`): while a task has a live lease, only its holder's writes pass; an
agent whose lease ran out, or that lost the task, is refused with
:class:`~taskline.domain.errors.LeaseConflictError` (409, naming the holder now, or saying
the task went back to pending) until it claims the task again. The application layer decides
this in the write's own transaction, against the task row it has locked — the holder's clock
never takes part, and a write racing the expiry or a new claim is ordered by the row lock.
Writes by people and by the server are not fenced. Tasks that were never claimed keep the
rules they had (an agent works on the tasks assigned to it).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskline.domain.errors import InvalidInputError, LeaseConflictError
from taskline.domain.status import TaskStatus

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "MIN_LEASE_SECONDS",
    "LeaseState",
    "check_lease_seconds",
    "ending",
    "fence",
    "on_status",
    "renewal",
]

DEFAULT_LEASE_SECONDS = 300.0
#: The shortest lease a claim may ask for.
MIN_LEASE_SECONDS = 1.0

#: Statuses a leased task may be in; moving it to any other ends the lease.
_HELD = frozenset({TaskStatus.IN_PROGRESS, TaskStatus.PAUSED})


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A task's lease columns, as its locked row holds them.

    ``holder`` None: nobody holds the task; ``expires_at`` is then when the last lease ended.
    ``lost_by``: the agent whose lease last ended without its doing (refused by :func:`fence`).
    """

    holder: str | None = None
    token: int = 0
    expires_at: datetime | None = None
    seconds: float | None = None
    lost_by: str | None = None

    def live(self, now: datetime) -> bool:
        """Whether someone holds the task and its lease has not run out by ``now``."""
        return self.holder is not None and self.expires_at is not None and self.expires_at > now


def check_lease_seconds(value: float | None, *, default: float, maximum: float) -> float:
    """The lease a request asks for (``None``: ``default``), within the bounds.

    Raises:
        InvalidInputError: shorter than :data:`MIN_LEASE_SECONDS` or longer than ``maximum``
            (``field`` is ``lease_seconds``).
    """
    if value is None:
        return default
    if not MIN_LEASE_SECONDS <= value <= maximum:
        raise InvalidInputError(
            f"lease_seconds: {value:g} is outside {MIN_LEASE_SECONDS:g}..{maximum:g}",
            field="lease_seconds",
        )
    return float(value)


def renewal(lease: LeaseState, now: datetime) -> dict[str, Any]:
    """The columns that extend a held lease to ``lease.seconds`` from ``now``."""
    if lease.holder is None:
        return {}
    return {"lease_expires_at": now + timedelta(seconds=lease.seconds or DEFAULT_LEASE_SECONDS)}


def ending(lease: LeaseState, *, by: str | None, now: datetime) -> dict[str, Any]:
    """The columns that end a held lease now; ``by`` is the agent ending it (None: a person
    or the server). When that is not the holder, the holder becomes the one that lost it."""
    if lease.holder is None:
        return {}
    columns: dict[str, Any] = {"lease_agent_id": None, "lease_expires_at": now}
    if by != lease.holder:
        columns["lease_lost_by"] = lease.holder
    return columns


def on_status(
    lease: LeaseState, current: TaskStatus, new: TaskStatus, *, by: str | None, now: datetime
) -> dict[str, Any]:
    """What a status move does to the lease: resuming renews it; leaving ``in_progress`` and
    ``paused`` (finishing, cancelling) ends it (see :func:`ending`)."""
    if lease.holder is None or new == current:
        return {}
    if new not in _HELD:
        return ending(lease, by=by, now=now)
    if new == TaskStatus.IN_PROGRESS:
        return renewal(lease, now)
    return {}


def fence(
    task_id: str, lease: LeaseState, agent_id: str, *, status: str, now: datetime
) -> dict[str, Any]:
    """Decide a write by agent ``agent_id`` on the task: return the columns it sets on the
    lease (a renewal when it is the holder's), or refuse it.

    Raises:
        LeaseConflictError: another agent holds the task; the writer's own lease ran out; or
            the writer lost the task's last lease and has not claimed it again.
    """
    if lease.holder == agent_id:
        if lease.live(now):
            return renewal(lease, now)
        raise LeaseConflictError(
            task_id,
            f"{agent_id}'s lease {lease.token} on task {task_id!r} expired at "
            f"{_when(lease.expires_at)}; the task goes back to pending: claim it again",
            holder=None,
            token=lease.token,
            status=TaskStatus.PENDING.value,
        )
    if lease.holder is not None:
        raise LeaseConflictError(
            task_id,
            f"task {task_id!r} is held by {lease.holder} (lease {lease.token}, until "
            f"{_when(lease.expires_at)}), not by {agent_id}",
            holder=lease.holder,
            token=lease.token,
            status=status,
        )
    if lease.lost_by == agent_id:
        where = "went back to pending" if status == TaskStatus.PENDING else f"is {status} now"
        raise LeaseConflictError(
            task_id,
            f"{agent_id} lost its lease {lease.token} on task {task_id!r} at "
            f"{_when(lease.expires_at)}; nobody holds the task, which {where}",
            holder=None,
            token=lease.token,
            status=status,
        )
    return {}


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
