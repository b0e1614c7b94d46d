"""Claiming tasks with leases: claim, renew, release, and the expiry of leases that ran out.

The rules are :mod:`taskline.domain.leases`; the statements :mod:`taskline.store.leases`.
Each operation is one write transaction that changes the task (its ``version`` moves on) and
logs what happened as ``task_updated`` with a ``lease`` member (a claim also logs
``task_started``), recording the actor: the agent, the person acting for it, or
``system:leases`` for an expiry.

Leases that ran out are given back by a sweeper (:meth:`ClaimService.start`, every
``sweep_interval`` seconds) and also at the start of every claim, in the claim's own
transaction, so a claim never waits for the sweeper to find a task that is free again.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from taskline.domain import changes
from taskline.domain.access import Action, require, require_self
from taskline.domain.actors import Actor, ActorKind
from taskline.domain.errors import InvalidInputError, LeaseConflictError, NotFoundError
from taskline.domain.leases import (
    DEFAULT_LEASE_SECONDS,
    LeaseState,
    check_lease_seconds,
    ending,
    fence,
)
from taskline.domain.models import AgentCreate, Task, utc_now
from taskline.domain.status import TaskStatus, check_return
from taskline.service.periodic import Periodic
from taskline.service.writes import Change, Writes
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.leases import Assigned, LeaseStore
from taskline.store.tables import AgentRow
from taskline.store.tasks import TaskStore

__all__ = ["ClaimService"]


#: The actor (and source) of expiries: the server itself.
EXPIRY = Actor.system("leases")
SOURCE = "api"


class ClaimService:
    """Claims and leases (the REST API's, the SDK's, the CLI's and the MCP server's way in).

    Args:
        lease_seconds: a claim's lease when it asks for none.
        max_lease_seconds: the longest lease a claim or a renewal may ask for.
        sweep_interval: seconds between two rounds of the expiry sweeper.
    """

    def __init__(
        self,
        database: Database,
        writes: Writes,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_lease_seconds: float = 3600.0,
        sweep_interval: float = 5.0,
    ) -> None:
        self.database = database
        self.writes = writes
        self.lease_seconds = lease_seconds
        self.max_lease_seconds = max(max_lease_seconds, lease_seconds)
        self.sweep_interval = sweep_interval
        self._sweeper = Periodic(
            self.expire,
            interval=sweep_interval,
            name="taskline-lease-sweeper",
            what="giving back expired leases",
        )
        self.expired = 0  #: leases given back since the start

    # --- claiming ---------------------------------------------------------------------------

    async def claim(
        self,
        actor: Actor,
        *,
        agent_id: str | None = None,
        tags: Sequence[str] = (),
        assigned: Assigned = "any",
        lease_seconds: float | None = None,
    ) -> Task | None:
        """Give the most urgent, then oldest, pending task that matches to an agent: it moves
        to ``in_progress``, assigned to the agent, with a lease (``task.lease``). None when
        nothing matches.

        ``agent_id``: the agent claiming; an agent's token claims for itself (naming another
        agent is refused), a person (member, admin) must name the agent it claims for.
        ``tags``: only tasks carrying at least one of them. ``assigned``: ``any`` (tasks
        assigned to the agent, or to nobody), ``mine`` or ``unassigned``. ``lease_seconds``:
        the lease (default the server's ``lease_seconds``), within 1 s and
        ``max_lease_seconds``.

        Raises:
            NotAuthenticatedError, ForbiddenError: the actor may not claim (for that agent).
            InvalidInputError: no agent named by a person; a lease out of bounds.
            NotFoundError: a person named an agent that does not exist.
        """
        agent = self._claimer(actor, agent_id)
        seconds = check_lease_seconds(
            lease_seconds, default=self.lease_seconds, maximum=self.max_lease_seconds
        )
        now = utc_now()
        async with self.writes.change() as change:
            leases = self._leases(change)
            await self._expire(change, leases)
            await self._register(change, agent, actor)
            task_id = await leases.claim(
                agent, tags=tags, assigned=assigned, seconds=seconds, now=now
            )
            if task_id is None:
                return None
            task = await TaskStore(change.session).get(task_id)
            assert task.lease is not None
            await _log(
                change,
                task,
                before=TaskStatus.PENDING,
                action="claimed",
                agent_id=agent,
                token=task.lease.token,
                reason=f"claimed by {agent} for {seconds:g} s",
                actor=actor,
            )
        return task

    async def renew(
        self, actor: Actor, task_id: str, *, lease_seconds: float | None = None
    ) -> Task:
        """Extend the task's lease to ``lease_seconds`` from now (default: what the claim
        asked for), for its holder (or a person acting for it).

        Raises:
            NotFoundError: no such task.
            LeaseConflictError: nobody holds the task, another agent does, or the caller's
                lease ran out (409, naming the holder).
            InvalidInputError: a lease out of bounds.
        """
        require(actor, Action.CLAIM)
        now = utc_now()
        async with self.writes.change() as change:
            leases = self._leases(change)
            status, lease = await self._held(leases, task_id, actor)
            seconds = check_lease_seconds(
                lease_seconds,
                default=lease.seconds or self.lease_seconds,
                maximum=self.max_lease_seconds,
            )
            expires_at = now + timedelta(seconds=seconds)
            await leases.set(
                task_id, {"lease_expires_at": expires_at, "lease_seconds": seconds}, now=now
            )
            task = await TaskStore(change.session).get(task_id)
            await _log(
                change,
                task,
                before=TaskStatus(status),
                action="renewed",
                agent_id=str(lease.holder),
                token=lease.token,
                reason=f"renewed by {_name(actor)} for {seconds:g} s",
                actor=actor,
            )
        return task

    async def release(self, actor: Actor, task_id: str) -> Task:
        """Give the task back: ``pending``, unassigned unless it was assigned to the holder
        before the claim; the lease ends. By its holder, or a person (then the holder has
        lost it: its late writes are refused).

        Raises:
            NotFoundError: no such task.
            LeaseConflictError: nobody holds the task, another agent does, or the caller's
                lease ran out (409, naming the holder).
        """
        require(actor, Action.CLAIM)
        now = utc_now()
        async with self.writes.change() as change:
            leases = self._leases(change)
            status, lease = await self._held(leases, task_id, actor)
            check_return(task_id, TaskStatus(status))
            by = actor.id if actor.kind == ActorKind.AGENT else None
            await leases.set(task_id, {**ending(lease, by=by, now=now), **_GIVE_BACK}, now=now)
            task = await TaskStore(change.session).get(task_id)
            await _log(
                change,
                task,
                before=TaskStatus(status),
                action="released",
                agent_id=str(lease.holder),
                token=lease.token,
                reason=f"released by {_name(actor)}",
                actor=actor,
            )
        return task

    # --- expiry -----------------------------------------------------------------------------

    async def expire(self) -> list[str]:
        """One round of the sweeper: give back every task whose lease ran out (logged by
        ``system:leases``); return their ids."""
        returned: list[str] = []
        while True:
            async with self.writes.change() as change:
                batch = await self._expire(change, self._leases(change))
            returned.extend(batch)
            if len(batch) < _SWEEP_BATCH:
                return returned

    async def start(self) -> None:
        """Start the sweeper (a no-op when it runs already)."""
        await self._sweeper.start()

    async def stop(self) -> None:
        """Stop the sweeper (a round in progress is rolled back)."""
        await self._sweeper.stop()

    async def _expire(self, change: Change, leases: LeaseStore) -> list[str]:
        returned = await leases.expire_due(utc_now(), limit=_SWEEP_BATCH)
        store = TaskStore(change.session)
        for gone in returned:
            task = await store.get(gone.task_id)
            await _log(
                change,
                task,
                before=TaskStatus.IN_PROGRESS,
                action="expired",
                agent_id=gone.agent_id,
                token=gone.token,
                reason=f"{gone.agent_id}'s lease {gone.token} expired at "
                f"{gone.expired_at.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} "
                "with no heartbeat; the task went back to pending",
                actor=EXPIRY,
                expires_at=gone.expired_at,
            )
        self.expired += len(returned)
        return [gone.task_id for gone in returned]

    # --- helpers ----------------------------------------------------------------------------

    def _leases(self, change: Change) -> LeaseStore:
        return LeaseStore(change.session, skip_locked=not self.database.is_sqlite)

    @staticmethod
    def _claimer(actor: Actor, agent_id: str | None) -> str:
        """The agent a claim is for (see :meth:`claim`)."""
        if actor.kind == ActorKind.AGENT and actor.id is not None:
            require_self(actor, Action.CLAIM, agent_id or actor.id)
            return actor.id
        require(actor, Action.CLAIM)
        if agent_id is None:
            raise InvalidInputError(
                "agent_id: name the agent to claim for (an agent's own token claims for itself)",
                field="agent_id",
            )
        return agent_id

    @staticmethod
    async def _register(change: Change, agent_id: str, actor: Actor) -> None:
        """An agent's token claiming for an agent not registered yet registers it (as its
        first connection would); a person naming an unknown agent is refused."""
        if await change.session.get(AgentRow, agent_id) is not None:
            return
        if actor.kind != ActorKind.AGENT:
            raise NotFoundError("agent", agent_id)
        await AgentStore(change.session).create(AgentCreate(id=agent_id, name=agent_id))

    @staticmethod
    async def _held(leases: LeaseStore, task_id: str, actor: Actor) -> tuple[str, LeaseState]:
        """Lock the task and check the actor may renew or release its lease: its holder
        while the lease is live, or a person while anyone holds it."""
        found = await leases.state(task_id)
        if found is None:
            raise NotFoundError("task", task_id)
        status, lease = found
        now = utc_now()
        if actor.kind == ActorKind.AGENT and actor.id is not None:
            fence(task_id, lease, actor.id, status=status, now=now)
        if lease.holder is None or (actor.kind == ActorKind.AGENT and not lease.live(now)):
            raise LeaseConflictError(
                task_id,
                f"nobody holds task {task_id!r} (it is {status}): claim it first",
                holder=None,
                token=lease.token,
                status=status,
            )
        return status, lease


_SWEEP_BATCH = 100

#: What giving a task back sets besides ending the lease (see LeaseStore.give_back_columns).
_GIVE_BACK = LeaseStore.give_back_columns()


def _name(actor: Actor) -> str:
    return actor.id if actor.kind == ActorKind.AGENT and actor.id else str(actor)


async def _log(
    change: Change,
    task: Task,
    *,
    before: TaskStatus,
    action: changes.LeaseAction,
    agent_id: str,
    token: int,
    reason: str,
    actor: Actor,
    expires_at: datetime | None = None,
) -> None:
    """Log what happened to the task's lease (see :func:`changes.lease_changed`); the lease's
    end is the task's live lease's, else ``expires_at``."""
    events = changes.lease_changed(
        task,
        before=before,
        action=action,
        agent_id=agent_id,
        token=token,
        expires_at=task.lease.expires_at if task.lease is not None else expires_at,
        reason=reason,
    )
    source = "leases" if actor == EXPIRY else SOURCE
    await change.record(task.id, events, actor=actor, source=source, apply=False)
