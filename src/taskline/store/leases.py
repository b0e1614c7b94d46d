"""The statements of task leases: claiming, expiring, reading a task's lease (see
:mod:`taskline.domain.leases` for the rules; the application layer applies them).

A claim is one statement. On PostgreSQL ``UPDATE … WHERE id = (SELECT … LIMIT 1 FOR UPDATE
SKIP LOCKED) RETURNING``: the inner select locks the row it picks, re-checking on its newest
version that it is still pending (one changed meanwhile is passed over), and skips rows other
transactions hold, so concurrent claimers each take a different task without waiting on one
another. On SQLite ``UPDATE … WHERE id = (SELECT … LIMIT 1) AND status = 'pending'
RETURNING``: writers run one at a time (``BEGIN IMMEDIATE``, one writer per process; another
process's writer waits on the busy timeout), so the select and the update see the same rows
and the guard always holds — there is no next candidate to retry. Either way a task is given
to one claimer only, and a claim that finds nothing changes nothing.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.leases import LeaseState
from taskline.domain.status import Priority, TaskStatus
from taskline.store.events import lease_state
from taskline.store.tables import TAGS, TASKS

__all__ = ["Assigned", "LeaseStore", "Returned"]

#: Which tasks a claim may take by assignment: the agent's own or nobody's (``any``), only
#: the agent's (``mine``), only nobody's (``unassigned``).
Assigned = Literal["any", "mine", "unassigned"]

_T = TASKS.c
_PRIORITY_RANK = case({p.value: p.rank for p in Priority}, value=_T.priority, else_=-1)
_LEASE_COLUMNS = (
    _T.id,
    _T.status,
    _T.lease_agent_id,
    _T.lease_token,
    _T.lease_expires_at,
    _T.lease_seconds,
    _T.lease_lost_by,
)
_PENDING = TaskStatus.PENDING.value
_IN_PROGRESS = TaskStatus.IN_PROGRESS.value


class Returned:
    """A task whose lease ran out and that went back to pending (what the expiry logs)."""

    __slots__ = ("agent_id", "expired_at", "task_id", "token")

    def __init__(self, task_id: str, agent_id: str, token: int, expired_at: datetime) -> None:
        self.task_id = task_id
        self.agent_id = agent_id
        self.token = token
        self.expired_at = expired_at


class LeaseStore:
    """Lease operations inside one write transaction (the caller owns the session)."""

    def __init__(self, session: AsyncSession, *, skip_locked: bool = False) -> None:
        """``skip_locked``: the database has ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)."""
        self.session = session
        self.skip_locked = skip_locked

    async def states(self, task_ids: Sequence[str]) -> dict[str, tuple[str, LeaseState]]:
        """Lock the rows of ``task_ids`` (in id order) and return each one's status and lease;
        unknown tasks are left out."""
        connection = await self.session.connection()
        rows = await connection.execute(
            select(*_LEASE_COLUMNS)
            .where(_T.id.in_(sorted(set(task_ids))))
            .order_by(_T.id)
            .with_for_update()
        )
        return {row.id: (row.status, lease_state(row)) for row in rows}

    async def state(self, task_id: str) -> tuple[str, LeaseState] | None:
        """:meth:`states` of one task (None: there is no such task)."""
        return (await self.states([task_id])).get(task_id)

    async def lost_by(self, task_id: str) -> str | None:
        """The agent that lost the task's last lease (no lock: for access checks)."""
        connection = await self.session.connection()
        found = await connection.scalar(select(_T.lease_lost_by).where(_T.id == task_id))
        return str(found) if found else None

    async def claim(
        self,
        agent_id: str,
        *,
        tags: Sequence[str],
        assigned: Assigned,
        seconds: float,
        now: datetime,
    ) -> str | None:
        """Give the first matching pending task to ``agent_id`` with a lease of ``seconds``;
        return its id (None: nothing matches). The most urgent first, then the oldest; with
        ``tags``, only tasks carrying at least one of them."""
        candidate = select(_T.id).where(_T.status == _PENDING)
        if assigned == "mine":
            candidate = candidate.where(_T.assigned_agent_id == agent_id)
        elif assigned == "unassigned":
            candidate = candidate.where(_T.assigned_agent_id.is_(None))
        else:
            candidate = candidate.where(
                or_(_T.assigned_agent_id == agent_id, _T.assigned_agent_id.is_(None))
            )
        if tags:  # correlated: one primary-key probe (task_id, tag) per pending task
            tagged = select(TAGS.c.task_id).where(
                TAGS.c.task_id == _T.id, TAGS.c.tag.in_(sorted(set(tags)))
            )
            candidate = candidate.where(tagged.exists())
        candidate = (
            candidate.order_by(_PRIORITY_RANK.desc(), _T.created_at, _T.id)
            .limit(1)
            .with_for_update(skip_locked=self.skip_locked)
        )
        chosen = _T.id == candidate.scalar_subquery()
        if not self.skip_locked:
            # SQLite: the statement runs alone, so this holds anyway; it is the conditional
            # update's guard. PostgreSQL: the inner select locked the row after re-checking
            # that it is pending (a row changed meanwhile is skipped), and the guard would
            # only tempt the planner to look the row up by status instead of by id.
            chosen = and_(chosen, _T.status == _PENDING)
        statement = (
            update(TASKS)
            .where(chosen)
            .values(
                status=_IN_PROGRESS,
                assigned_agent_id=agent_id,
                lease_assigned=_T.assigned_agent_id.is_not(None),
                lease_agent_id=agent_id,
                lease_token=_T.lease_token + 1,
                lease_expires_at=now + timedelta(seconds=seconds),
                lease_seconds=seconds,
                lease_lost_by=case((_T.lease_lost_by == agent_id, None), else_=_T.lease_lost_by),
                started_at=func.coalesce(_T.started_at, now),
                updated_at=now,
                version=_T.version + 1,
            )
            .returning(_T.id)
        )
        connection = await self.session.connection()
        claimed = await connection.scalar(statement)
        return str(claimed) if claimed is not None else None

    async def expire_due(self, now: datetime, *, limit: int = 100) -> list[Returned]:
        """Give back up to ``limit`` tasks whose lease ran out by ``now`` (``in_progress``
        ones; a paused task's lease does not run out): pending, unassigned unless they were
        assigned before their claim, the holder remembered as the one that lost it. On
        PostgreSQL rows another transaction holds are left for the next round."""
        due = (
            select(_T.id)
            .where(
                _T.lease_agent_id.is_not(None),
                _T.lease_expires_at <= now,
                _T.status == _IN_PROGRESS,
            )
            .order_by(_T.lease_expires_at, _T.id)
            .limit(limit)
            .with_for_update(skip_locked=self.skip_locked)
        )
        statement = (
            update(TASKS)
            .where(
                _T.id.in_(due),
                and_(_T.lease_agent_id.is_not(None), _T.status == _IN_PROGRESS),
            )
            .values(
                **self.give_back_columns(),
                lease_lost_by=_T.lease_agent_id,
                lease_agent_id=None,
                updated_at=now,
                version=_T.version + 1,
            )
            .returning(_T.id, _T.lease_lost_by, _T.lease_token, _T.lease_expires_at)
            .execution_options(synchronize_session=False)
        )
        connection = await self.session.connection()
        rows = (await connection.execute(statement)).all()
        returned = [
            Returned(row.id, row.lease_lost_by, row.lease_token, row.lease_expires_at)
            for row in rows
        ]
        return sorted(returned, key=lambda r: r.task_id)

    @staticmethod
    def give_back_columns() -> dict[str, Any]:
        """The columns that give a leased task back (released): ``pending``, unassigned
        unless it was assigned to the holder before the claim."""
        return {
            "status": _PENDING,
            "assigned_agent_id": case((_T.lease_assigned, _T.assigned_agent_id), else_=None),
        }

    async def set(self, task_id: str, columns: dict[str, Any], *, now: datetime) -> None:
        """Set lease (and status, assignment) columns of a locked task; the version moves on."""
        connection = await self.session.connection()
        await connection.execute(
            update(TASKS)
            .where(_T.id == task_id)
            .values(**columns, updated_at=now, version=_T.version + 1)
        )
