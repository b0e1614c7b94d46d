"""Requests agents make of people: open, read, wait for, answer, cancel, and expire them.

The rules are :mod:`taskline.domain.requests`; the statements :mod:`taskline.store.requests`.
Every change is one write transaction that locks the task's row, changes the request, keeps
the task's ``needs_input``, and logs ``request.*`` (and ``task_updated`` when ``needs_input``
changed) with the actor: the person answering, the agent asking, ``system:requests`` for an
expiry. A task that ends cancels its open requests in the transaction that ends it (see
:func:`taskline.service.recorder.record_events`).

Waiting (:meth:`RequestService.wait`) does not poll the database: the service is a bus
listener, and the ``request.*`` events of every process (through Redis when there are
several) wake the waiters of that request, which then read it once. Only while the bus
cannot hear the other processes (``linked()`` False: Redis is down) does a waiter read the
request again every :data:`UNLINKED_RECHECK` seconds, so an answer given on another process
ends its wait within that bound. Expiry is a sweeper
(:meth:`RequestService.start`, every ``sweep_interval`` seconds); answering a request whose
``expires_at`` passed before the sweeper saw it expires it there and then (409).
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from taskline.domain.access import Action, allows, require, require_on_task
from taskline.domain.actors import Actor
from taskline.domain.errors import ConflictError, NotFoundError
from taskline.domain.events import REQUEST_EVENTS, WebSocketMessage
from taskline.domain.models import utc_now
from taskline.domain.requests import (
    MAX_LISTED,
    Request,
    RequestAnswer,
    RequestSpec,
    RequestStatus,
    close,
    new_request,
    resolve,
)
from taskline.domain.status import TERMINAL_STATUSES, TaskStatus
from taskline.service.periodic import Periodic
from taskline.service.request_log import logged
from taskline.service.writes import Change, Writes
from taskline.store.agents import AgentStore
from taskline.store.database import Database
from taskline.store.requests import RequestStore
from taskline.store.tasks import TaskStore

__all__ = ["EXPIRY", "MAX_WAIT", "UNLINKED_RECHECK", "RequestService"]

#: The actor (and source) of expiries: the server itself.
EXPIRY = Actor.system("requests")
SOURCE = "api"
#: The longest one wait may last (seconds); a client waits longer by asking again.
MAX_WAIT = 30.0
#: Seconds between two reads of a waited-for request while other processes cannot be heard.
UNLINKED_RECHECK = 1.0


class RequestService:
    """Requests (the REST API's, the SDK's, the CLI's and the MCP server's way in).

    Args:
        max_wait: the longest :meth:`wait` lasts, whatever it is asked (at most
            :data:`MAX_WAIT`).
        sweep_interval: seconds between two rounds of the expiry sweeper.
        linked: True while other processes' events reach this one (the bus's link to Redis
            is up; always True for a single process).
    """

    def __init__(
        self,
        database: Database,
        writes: Writes,
        *,
        max_wait: float = MAX_WAIT,
        sweep_interval: float = 5.0,
        linked: Callable[[], bool] = lambda: True,
    ) -> None:
        self.database = database
        self.writes = writes
        self.linked = linked
        self.max_wait = min(max_wait, MAX_WAIT)
        self._waiters: dict[str, set[_Waiter]] = {}
        self._closing = False
        self._sweeper = Periodic(
            self.expire,
            interval=sweep_interval,
            name="taskline-request-sweeper",
            what="expiring requests",
        )
        self.expired = 0  #: requests expired since the start

    # --- reading ----------------------------------------------------------------------------

    async def get(self, actor: Actor, request_id: str) -> Request:
        """The request.

        Raises:
            NotAuthenticatedError, ForbiddenError: the actor may not read.
            NotFoundError: no such request.
        """
        require(actor, Action.READ)
        async with self.database.read() as session:
            request = await RequestStore(session).get(request_id)
        if request is None:
            raise NotFoundError("request", request_id)
        return request

    async def wait(self, actor: Actor, request_id: str, timeout: float) -> Request:
        """The request once it is no longer open, or as it is after ``timeout`` seconds (at
        most ``max_wait``); at once when it is not open already, or ``timeout`` is 0. The
        server stopping ends every wait with the request as it is then. A request whose task
        is deleted meanwhile was cancelled first: the wait returns it cancelled, as the
        event logging that carried it (reading it again is a 404).

        Raises what :meth:`get` raises.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(timeout, self.max_wait))
        waiter = _Waiter()
        self._waiters.setdefault(request_id, set()).add(waiter)
        try:
            while True:
                waiter.woken.clear()  # before reading: a change committed after it wakes us
                try:
                    request = await self.get(actor, request_id)
                except NotFoundError:
                    if waiter.last is None:
                        raise
                    return waiter.last  # closed as its task was deleted
                remaining = deadline - loop.time()
                if request.status != RequestStatus.OPEN or remaining <= 0 or self._closing:
                    return request
                if not self.linked():  # an answer on another process would not wake us
                    remaining = min(remaining, UNLINKED_RECHECK)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.woken.wait(), remaining)
        finally:
            waiters = self._waiters.get(request_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[request_id]

    def waiting(self, request_id: str) -> int:
        """How many waits on the request are in progress in this process."""
        return len(self._waiters.get(request_id, ()))

    async def on_committed(self, messages: Sequence[WebSocketMessage]) -> None:
        """Bus listener: a ``request.*`` event wakes that request's waiters (and hands them
        the request it carries, closed, for when it is gone by the time they read it)."""
        for message in messages:
            if message.event_type in REQUEST_EVENTS:
                request_id = message.data.get("id")
                if isinstance(request_id, str):
                    waiters = self._waiters.get(request_id, ())
                    closed = None
                    if waiters and message.data.get("status") != RequestStatus.OPEN:
                        with contextlib.suppress(ValidationError):
                            closed = Request.model_validate(message.data)
                    for waiter in waiters:
                        if closed is not None:
                            waiter.last = closed
                        waiter.woken.set()

    # --- changing ---------------------------------------------------------------------------

    async def open(self, actor: Actor, task_id: str, spec: RequestSpec) -> Request:
        """Open a request on the task, asked by ``actor``; logs ``request.opened``.

        Raises:
            NotAuthenticatedError, ForbiddenError: the actor may not publish on the task
                (viewers; an agent on a task that is not its own).
            NotFoundError: no such task.
            ConflictError: the task has ended; an agent that does not hold its lease (409).
            InvalidInputError: ``response_schema`` is not a JSON Schema.
        """
        now = utc_now()
        require(actor, Action.PUBLISH)
        request = new_request(task_id, spec, by=str(actor), now=now)
        async with self.writes.change() as change:
            store = RequestStore(change.session)
            status = await store.lock_task(task_id)
            if status is None:
                raise NotFoundError("task", task_id)
            await self._may_act_on(change, actor, task_id)
            if TaskStatus(status) in TERMINAL_STATUSES:
                raise ConflictError(f"task {task_id!r} is {status}: it takes no more requests")
            await store.insert(request)
            await self._log(change, task_id, [request], actor, SOURCE)
        return request

    async def answer(self, actor: Actor, request_id: str, reply: RequestAnswer) -> Request:
        """Answer the request (a question), or approve or reject it (an approval); logs
        ``request.answered``. Only people (members, admins) answer.

        Raises:
            NotAuthenticatedError, ForbiddenError: the actor may not answer (viewers, agents).
            NotFoundError: no such request.
            ConflictError: it is not open (answered, cancelled, expired) (409).
            InvalidInputError: the answer fails the request's choices or schema, or does not
                fit its kind (422).
        """
        require(actor, Action.ANSWER_REQUESTS)
        now = utc_now()
        expired: Request | None = None
        async with self.writes.change() as change:
            request = await self._locked(change, request_id)
            if request.due(now):
                expired = close(request, RequestStatus.EXPIRED, by=str(EXPIRY), now=now)
                await RequestStore(change.session).save(expired)
                await self._log(change, request.task_id, [expired], EXPIRY, "requests")
            else:
                request = resolve(request, reply, by=str(actor), now=now)
                await RequestStore(change.session).save(request)
                await self._log(change, request.task_id, [request], actor, SOURCE)
        if expired is not None:
            raise ConflictError(f"request {request_id!r} expired unanswered")
        return request

    async def cancel(self, actor: Actor, request_id: str, reason: str | None = None) -> Request:
        """Cancel the open request; logs ``request.cancelled``. By whoever asked it, an
        agent working on the task, or a person (member, admin).

        Raises:
            NotAuthenticatedError, ForbiddenError: the actor may not (viewers, other agents).
            NotFoundError: no such request.
            ConflictError: it is not open (409).
        """
        require(actor, Action.READ)
        now = utc_now()
        async with self.writes.change() as change:
            request = await self._locked(change, request_id)
            if not allows(actor, Action.ANSWER_REQUESTS) and str(actor) != request.created_by:
                await self._may_act_on(change, actor, request.task_id)
            request = close(
                request, RequestStatus.CANCELLED, by=str(actor), now=now, comment=reason
            )
            await RequestStore(change.session).save(request)
            await self._log(change, request.task_id, [request], actor, SOURCE)
        return request

    # --- expiry -----------------------------------------------------------------------------

    async def expire(self) -> list[str]:
        """One round of the sweeper: expire every open request whose ``expires_at`` passed
        (logged by ``system:requests``), one transaction per task; return their ids."""
        expired: list[str] = []
        while True:
            async with self.database.read() as session:
                tasks = await RequestStore(session).due_tasks(utc_now(), limit=_SWEEP_BATCH)
            for task_id in tasks:
                expired.extend(await self._expire_task(task_id))
            if len(tasks) < _SWEEP_BATCH:
                self.expired += len(expired)
                return expired

    async def _expire_task(self, task_id: str) -> list[str]:
        now = utc_now()
        async with self.writes.change() as change:
            store = RequestStore(change.session)
            if await store.lock_task(task_id) is None:
                return []
            due = [
                close(r, RequestStatus.EXPIRED, by=str(EXPIRY), now=now)
                for r in await store.open_of(task_id)
                if r.due(now)
            ]
            for request in due:
                await store.save(request)
            if due:
                await self._log(change, task_id, due, EXPIRY, "requests")
        return [request.id for request in due]

    async def start(self) -> None:
        """Start the expiry sweeper (a no-op when it runs already)."""
        self._closing = False
        await self._sweeper.start()

    async def stop(self) -> None:
        """Stop the sweeper, and end every wait (see :meth:`end_waits`)."""
        self.end_waits()
        await self._sweeper.stop()

    def end_waits(self) -> None:
        """The server is stopping: every wait in progress, and any that starts from now on,
        returns the request as it is (still open), so no long poll holds the shutdown up."""
        self._closing = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.woken.set()

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    async def _locked(change: Change, request_id: str) -> Request:
        """Lock the request's task, then the request (the lock order of every change)."""
        store = RequestStore(change.session)
        task_id = await store.task_of(request_id)
        if task_id is None:
            raise NotFoundError("request", request_id)
        await store.lock_task(task_id)
        request = await store.get(request_id, for_update=True)
        if request is None:  # its task was deleted meanwhile
            raise NotFoundError("request", request_id)
        return request

    @staticmethod
    async def _may_act_on(change: Change, actor: Actor, task_id: str) -> None:
        """An agent acts only on its own tasks, as for publishing."""
        workers = await AgentStore(change.session).workers(task_id)
        require_on_task(actor, Action.PUBLISH, task_id, workers)

    @staticmethod
    async def _log(
        change: Change, task_id: str, requests: list[Request], actor: Actor, source: str
    ) -> None:
        events = await logged(change.session, task_id, requests)
        await change.record(task_id, events, actor=actor, source=source, apply=False)

    # --- listing (last: the name would shadow the builtin in the annotations below it) ------

    async def list(
        self,
        actor: Actor,
        *,
        status: Sequence[RequestStatus] = (),
        task_id: str | None = None,
        limit: int = MAX_LISTED,
    ) -> list[Request]:
        """Requests oldest first, of one task or of all, in any of ``status`` (none: all);
        at most ``limit``.

        Raises:
            NotAuthenticatedError, ForbiddenError: the actor may not read.
            NotFoundError: ``task_id`` names no task.
        """
        require(actor, Action.READ)
        async with self.database.read() as session:
            store = RequestStore(session)
            if task_id is not None and not await TaskStore(session).exists(task_id):
                raise NotFoundError("task", task_id)
            return await store.find(task_id=task_id, statuses=status, limit=limit)


_SWEEP_BATCH = 100


class _Waiter:
    """One wait in progress: woken by a ``request.*`` event, which leaves the request it
    carries in ``last`` when it is no longer open."""

    __slots__ = ("last", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.last: Request | None = None
