"""Publishing events (agents, the AG-UI bridge, ``EventBus.emit``) and reading the log."""

from collections.abc import Sequence

from taskline.domain.access import Action, require, require_on_task
from taskline.domain.actors import Actor, Role
from taskline.domain.errors import NotFoundError
from taskline.domain.events import EventIn, WebSocketMessage
from taskline.domain.runs import RUN_EVENT_TYPES, RunSummary, runs_of
from taskline.service.writes import GroupCommit
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.events import EventLog, LogHead, TaskState
from taskline.store.tasks import TaskStore

__all__ = ["EventService"]


class EventService:
    """The log's way in for publishers (group-committed), and its reads."""

    def __init__(self, database: Database, commits: GroupCommit) -> None:
        self.database = database
        self.commits = commits

    async def publish(
        self,
        task_id: str,
        events: Sequence[EventIn],
        *,
        actor: Actor,
        source: str | None = None,
    ) -> list[WebSocketMessage]:
        """Store ``events`` all or nothing, apply what they mean, then deliver them live;
        return them with their seqs (a re-sent ``id`` returns the stored event).

        Raises:
            NotFoundError: no such task.
            InvalidInputError: an event is refused (``field`` names it: ``events.N...``).
            ConflictError: an event id is already used on another task.
            NotAuthenticatedError, ForbiddenError: the actor may not publish here (an agent
                only on its own tasks).
        """
        if actor.role == Role.AGENT:
            async with self.database.read() as session:
                workers = await AgentStore(session).workers(task_id)
            require_on_task(actor, Action.PUBLISH, task_id, workers)
        else:
            require(actor, Action.PUBLISH)
        return await self.commits.publish(task_id, events, actor=actor, source=source)

    async def persist(self, task_id: str, events: list[EventIn]) -> list[WebSocketMessage]:
        """Store without delivering: the ``persist`` of the spec's ``EventBus.emit``, which
        dispatches what this returns itself. The actor is the server (in-process code)."""
        return await self.commits.publish(
            task_id, events, actor=Actor.system("bus"), dispatch=False
        )

    async def history(
        self, task_id: str, *, since: int, limit: int, types: Sequence[str]
    ) -> tuple[LogHead, list[WebSocketMessage]]:
        """The log's retained range and its events after ``since``."""
        async with self.database.read() as session:
            log = EventLog(session)
            head = await log.head(task_id)
            return head, await log.read(task_id, since=since, limit=limit, types=types)

    async def recent(
        self, *, limit: int, types: Sequence[str], task_id: str | None
    ) -> list[WebSocketMessage]:
        """The newest events across tasks, oldest of them first."""
        async with self.database.read() as session:
            return await EventLog(session).recent(limit=limit, types=types, task_id=task_id)

    async def runs(self, task_id: str) -> list[RunSummary]:
        """The task's runs and their outcomes, oldest first, derived from its log
        (:mod:`taskline.domain.runs`).

        Raises:
            NotFoundError: no such task.
        """
        async with self.database.read() as session:
            if not await TaskStore(session).exists(task_id):
                raise NotFoundError("task", task_id)
            types = sorted(RUN_EVENT_TYPES)
            return runs_of(await EventLog(session).read(task_id, types=types))

    async def state(self, task_id: str) -> TaskState:
        """The task's shared state document and its version."""
        async with self.database.read() as session:
            return await EventLog(session).state(task_id)

    async def head(self, task_id: str) -> LogHead:
        async with self.database.read() as session:
            return await EventLog(session).head(task_id)
