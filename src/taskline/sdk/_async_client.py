"""The asynchronous client: the REST API (shared with :class:`~taskline.sdk.Client`), live
subscriptions, and agent runs."""

import asyncio
import inspect
import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from taskline.domain.events import EventIn
from taskline.domain.ids import ID_PATTERN, new_id
from taskline.domain.models import Agent, Message, Section, Subtask, Task, TaskPage
from taskline.domain.requests import Request
from taskline.sdk import _endpoints as api
from taskline.sdk._agent import AgentConnector, AgentLink, LinkState
from taskline.sdk._config import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Backoff,
    DeliveryOptions,
)
from taskline.sdk._credentials import resolve_token
from taskline.sdk._errors import ClientClosedError, ServerUnreachableError, TasklineClientError
from taskline.sdk._http import Call, IfMatch, request_headers, server_url, transport_errors
from taskline.sdk._models import (
    ClaimedTask,
    Command,
    EventPage,
    IssuedToken,
    MessagePosted,
    TaskControl,
    TaskState,
)
from taskline.sdk._run import CommandCallback, Run
from taskline.sdk._subscription import Subscription

__all__ = ["AgentConnection", "AsyncClient", "event_payloads"]

T = TypeVar("T")

logger = logging.getLogger("taskline.sdk")

EventLike = EventIn | Mapping[str, Any]


def event_payloads(events: EventLike | Iterable[EventLike]) -> list[dict[str, Any]]:
    """Turn one event or several (dicts or :class:`EventIn`) into JSON objects with ids.

    An event without an ``id`` gets a fresh ``evt_…`` one, so re-sending the list after an
    uncertain failure stores nothing twice. The caller's dicts are not modified.

    Raises:
        TypeError: an item is neither a mapping nor an :class:`EventIn`.
    """
    items: Iterable[EventLike]
    items = [events] if isinstance(events, EventIn | Mapping) else events
    payloads: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, EventIn):
            payload = item.model_dump(mode="json", exclude_none=True)
        elif isinstance(item, Mapping):
            payload = dict(item)
        else:
            raise TypeError(f"events must be dicts or EventIn, not {type(item).__name__}")
        payload.setdefault("id", new_id("evt"))
        payloads.append(payload)
    return payloads


class AsyncClient:
    """An asynchronous Taskline client: REST, live subscriptions and agent runs.

    Example::

        async with AsyncClient("http://127.0.0.1:8000") as taskline:
            task = await taskline.create_task("Review the docs")
            async with taskline.run(task.id, agent="agent_reviewer") as run:
                await run.progress(0.5, "Halfway")

    Args:
        url: the server's base URL; a path prefix (behind a reverse proxy) is kept.
        token: sent as ``Authorization: Bearer <token>`` on every request and WebSocket
            upgrade. ``None`` (the default): the ``TASKLINE_TOKEN`` environment variable,
            else the token ``taskline login`` stored for this server (see
            :func:`credentials_path`), else none. ``""``: none, without looking.
        timeout: seconds for each of connect, read, write and pool on REST calls; ``None``
            waits forever.
        delivery: buffering, batching, timeouts and backoff of runs' events.
        transport: an httpx transport to use instead of the network (REST calls only).
        agent_connector: opens agent connections instead of WebSockets to ``url`` (see
            :data:`~taskline.sdk._agent.AgentConnector`; for code inside a server).

    Raises:
        ValueError: ``url`` is not an ``http://`` or ``https://`` URL with a host.

    REST methods raise what :class:`~taskline.sdk.Client`'s raise, including
    :class:`TasklineAuthError` for a missing or refused token (401) or a role that may not do
    it (403); runs, agent connections and subscriptions raise it too, instead of reconnecting.
    A closed client cannot be reopened (:class:`ClientClosedError`).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        delivery: DeliveryOptions | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        agent_connector: AgentConnector | None = None,
    ) -> None:
        self.url = server_url(url)
        self.delivery = delivery or DeliveryOptions()
        self._headers = request_headers(resolve_token(self.url, token))
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=self._headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self._agents: dict[str, tuple[AgentLink, int]] = {}
        self._agent_connector = agent_connector
        self._closed = False

    def __repr__(self) -> str:
        return f"<AsyncClient {self.url} {'closed' if self._closed else 'open'}>"

    # --- lifecycle

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close agent connections (without waiting for acknowledgements: leave runs first
        for that) and the connection pool. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        links, self._agents = [link for link, _ in self._agents.values()], {}
        for link in links:
            await link.close(flush=False)
        await self._http.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("expected an open client, got closed")

    async def _send(self, call: Call[T]) -> T:
        """Send ``call`` and return its parsed answer; the one place this face does REST I/O."""
        self._check_open()
        request = call.request(self._http)
        with transport_errors(self.url):
            response = await self._http.send(request)
        return call.handle(response)

    # --- service

    async def health(self) -> dict[str, Any]:
        """Return the health answer (``status``, ``database``, ``version``)."""
        return await self._send(api.health())

    async def create_token(
        self, username: str, password: str, *, name: str | None = None
    ) -> IssuedToken:
        """Sign in as ``username`` and return a new personal token; see
        :meth:`Client.create_token`."""
        return await self._send(api.create_token(username, password, name))

    # --- tasks

    async def list_tasks(
        self,
        status: str | Iterable[str] | None = None,
        agent: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        sort: str = "-created_at",
        limit: int = 50,
        offset: int = 0,
    ) -> TaskPage:
        """Return one page of tasks; see :meth:`Client.list_tasks`."""
        return await self._send(
            api.list_tasks(
                status=status, agent=agent, tag=tag, q=q, sort=sort, limit=limit, offset=offset
            )
        )

    async def get_task(self, task_id: str) -> Task:
        """Return the task with its sections and subtasks; :class:`NotFound` if unknown."""
        return await self._send(api.get_task(task_id))

    async def create_task(self, title: str, **fields: Any) -> Task:
        """Create a task; ``fields`` are the other ``TaskCreate`` fields."""
        return await self._send(api.create_task({"title": title, **fields}))

    async def update_task(self, task_id: str, *, if_match: IfMatch = None, **changes: Any) -> Task:
        """Change only the given fields (PATCH); a refused status change is a :class:`Conflict`.

        ``if_match``: see :meth:`Client.update_task` (a stale one raises
        :class:`PreconditionFailed`)."""
        return await self._send(api.update_task(task_id, changes, if_match))

    async def replace_task(
        self, task_id: str, title: str, *, if_match: IfMatch = None, **fields: Any
    ) -> Task:
        """Replace the task's fields (PUT); an omitted ``status``/``sections`` is kept.

        ``if_match``: see :meth:`Client.update_task`."""
        return await self._send(api.replace_task(task_id, {"title": title, **fields}, if_match))

    async def delete_task(self, task_id: str, *, if_match: IfMatch = None) -> None:
        """Delete the task with its sections and messages; :class:`NotFound` if unknown.

        ``if_match``: see :meth:`Client.update_task`."""
        await self._send(api.delete_task(task_id, if_match))

    # --- sections and subtasks

    async def add_section(
        self,
        task_id: str,
        title: str,
        subtasks: Iterable[str | Mapping[str, Any]] = (),
        *,
        position: int | None = None,
    ) -> Section:
        """Add a section, optionally with subtasks (titles or ``SubtaskCreate`` fields).

        ``position`` 0 puts it first; None (default) last.
        """
        return await self._send(api.add_section(task_id, _section(title, subtasks), position))

    async def rename_section(self, task_id: str, section_id: str, title: str) -> Section:
        """Rename a section; :class:`NotFound` if it is not in the task."""
        return await self._send(api.rename_section(task_id, section_id, title))

    async def delete_section(self, task_id: str, section_id: str) -> None:
        """Delete a section and its subtasks."""
        await self._send(api.delete_section(task_id, section_id))

    async def add_subtask(
        self,
        task_id: str,
        section_id: str,
        title: str,
        *,
        done: bool = False,
        notes: str = "",
        position: int | None = None,
    ) -> Subtask:
        """Add a subtask to a section (``position`` 0 first; None last)."""
        fields = {"title": title, "done": done, "notes": notes}
        return await self._send(api.add_subtask(task_id, section_id, fields, position))

    async def update_subtask(self, task_id: str, subtask_id: str, **changes: Any) -> Subtask:
        """Change ``title``, ``done``, ``notes`` or move it (``section_id``); logs
        ``subtask_updated``."""
        return await self._send(api.update_subtask(task_id, subtask_id, changes))

    async def toggle_subtask(self, task_id: str, subtask_id: str) -> Subtask:
        """Flip the subtask's ``done``."""
        return await self._send(api.toggle_subtask(task_id, subtask_id))

    async def delete_subtask(self, task_id: str, subtask_id: str) -> None:
        """Delete a subtask."""
        await self._send(api.delete_subtask(task_id, subtask_id))

    # --- export and import

    async def export(self, fmt: str, task_id: str | None = None) -> tuple[str, bytes]:
        """Export every task (or only ``task_id``); see :meth:`Client.export`."""
        return await self._send(api.export(fmt, task_id))

    async def import_tasks(self, data: bytes, mode: str = "create") -> dict[str, int]:
        """Import a JSON export; see :meth:`Client.import_tasks`."""
        return await self._send(api.import_tasks(data, mode))

    # --- agents

    async def list_agents(self, status: str | None = None) -> list[Agent]:
        """Return every agent, or only those with ``status``."""
        return await self._send(api.list_agents(status))

    async def get_agent(self, agent_id: str) -> Agent:
        """Return the agent; :class:`NotFound` if unknown."""
        return await self._send(api.get_agent(agent_id))

    async def create_agent(self, name: str, **fields: Any) -> Agent:
        """Register an agent; ``fields`` are ``id``, ``kind``, ``status``, ``metadata``."""
        return await self._send(api.create_agent({"name": name, **fields}))

    async def update_agent(self, agent_id: str, **changes: Any) -> Agent:
        """Change only the given fields of the agent (PATCH)."""
        return await self._send(api.update_agent(agent_id, changes))

    async def delete_agent(self, agent_id: str) -> None:
        """Delete the agent; :class:`NotFound` if unknown."""
        await self._send(api.delete_agent(agent_id))

    # --- webhooks (admins; plain JSON documents, as the REST API answers)

    async def list_webhooks(self) -> list[dict[str, Any]]:
        """Return the webhooks (without their secrets)."""
        found: list[dict[str, Any]] = (await self._send(api.list_webhooks()))["webhooks"]
        return found

    async def create_webhook(self, url: str, **fields: Any) -> dict[str, Any]:
        """Add a webhook; ``fields`` are ``events``, ``format``, ``secret``, ``enabled``,
        ``description``. The answer holds its ``secret``, shown only this once."""
        return await self._send(api.create_webhook({"url": url, **fields}))

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete the webhook and its delivery log; :class:`NotFound` if unknown."""
        await self._send(api.delete_webhook(webhook_id))

    async def test_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Send a test delivery; return it after its first attempt."""
        return await self._send(api.test_webhook(webhook_id))

    async def webhook_deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The webhook's delivery log, newest first."""
        call = api.webhook_deliveries(webhook_id, status=status, limit=limit)
        found: list[dict[str, Any]] = (await self._send(call))["deliveries"]
        return found

    async def claim(
        self,
        tags: Iterable[str] = (),
        *,
        lease_seconds: float | None = None,
        agent_id: str | None = None,
        assigned: str = "any",
    ) -> ClaimedTask | None:
        """Claim the most urgent, then oldest, pending task carrying one of ``tags`` (any
        task without): it is this agent's, ``in_progress``, until ``task.lease.expires_at``;
        publishing events on it renews the lease. None when nothing matches.

        ``lease_seconds``: the lease (default the server's). ``agent_id``: the agent to claim
        for, when a person's token claims (an agent's token claims for itself).
        ``assigned``: ``any`` (tasks assigned to the agent or to nobody), ``mine`` or
        ``unassigned``.
        """
        return await self._send(
            api.claim(agent_id=agent_id, tags=tags, assigned=assigned, lease_seconds=lease_seconds)
        )

    async def renew_lease(self, task_id: str, *, lease_seconds: float | None = None) -> ClaimedTask:
        """Extend the task's lease (by ``lease_seconds`` from now; default what the claim
        asked for). :class:`LeaseLost` (naming the holder) when this agent no longer holds it.
        """
        return await self._send(api.renew_lease(task_id, lease_seconds))

    async def release(self, task_id: str) -> Task:
        """Give a claimed task back (pending; unassigned unless it was assigned to this agent
        before the claim). :class:`LeaseLost` when this agent does not hold it."""
        return await self._send(api.release(task_id))

    # --- requests (questions and approvals for people)

    async def open_request(self, task_id: str, kind: str, question: str, **fields: Any) -> Request:
        """Ask a person on the task: ``kind`` ``question`` (``response_schema=``, ``choices=``)
        or ``approval`` (``action={"name": …, "arguments": {…}, "reason": …, "risk": …}``);
        ``expires_in=`` seconds, ``run_id=``, ``tool_call_id=``. The request is open until a
        person answers it; :meth:`wait_request` waits for that."""
        body = {"kind": kind, "question": question, **fields}
        return await self._send(api.open_request(task_id, body))

    async def get_request(self, request_id: str, *, wait: float = 0) -> Request:
        """The request; with ``wait`` (at most 30 s), once it is no longer open or ``wait``
        seconds passed (then still open)."""
        return await self._send(api.get_request(request_id, wait))

    async def wait_request(self, request_id: str, *, timeout: float | None = None) -> Request:
        """Wait until the request is no longer open and return it; after ``timeout`` seconds
        (None: no limit) return it still open. Long polls of at most 30 s, one after another;
        a server that cannot be reached (restarting, say) is asked again after a backoff —
        the request is durable, so nothing is lost meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delays = self.delivery.backoff.delays()
        while True:
            remaining = _MAX_POLL if deadline is None else deadline - loop.time()
            try:
                request = await self.get_request(
                    request_id, wait=max(0.0, min(_MAX_POLL, remaining))
                )
            except ServerUnreachableError:
                if deadline is not None and loop.time() >= deadline:
                    raise
                await asyncio.sleep(next(delays))
                continue
            delays = self.delivery.backoff.delays()
            if request.status != "open" or (deadline is not None and loop.time() >= deadline):
                return request

    async def list_requests(
        self, status: str | Iterable[str] | None = None, *, task_id: str | None = None
    ) -> list[Request]:
        """Requests oldest first (``status="open"``: the inbox), of every task or one."""
        statuses = [status] if isinstance(status, str) else list(status or ())
        return await self._send(api.list_requests(statuses, task_id))

    async def answer_request(
        self, request_id: str, answer: Any, *, comment: str | None = None
    ) -> Request:
        """Answer a question (people only); :class:`InvalidRequest` when the answer fails its
        choices or schema, :class:`Conflict` when it is no longer open."""
        return await self._send(
            api.answer_request(request_id, _reply(answer=answer, comment=comment))
        )

    async def approve(
        self,
        request_id: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        comment: str | None = None,
    ) -> Request:
        """Approve an approval, with edited ``arguments`` (None: as asked)."""
        reply = _reply(decision="approve", arguments=arguments, comment=comment)
        return await self._send(api.answer_request(request_id, reply))

    async def reject(self, request_id: str, *, comment: str | None = None) -> Request:
        """Reject an approval, saying why in ``comment``."""
        reply = _reply(decision="reject", comment=comment)
        return await self._send(api.answer_request(request_id, reply))

    async def cancel_request(self, request_id: str, *, reason: str | None = None) -> Request:
        """Cancel an open request (whoever asked it, or a person)."""
        return await self._send(api.cancel_request(request_id, reason))

    async def next_task(self, agent_id: str) -> Task | None:
        """Return the oldest ``pending`` task assigned to the agent, or None when there is none.

        Raises :class:`NotFound` for an unknown agent.
        """
        return await self._send(api.next_task(agent_id))

    # --- messages and control

    async def post_message(
        self, task_id: str, content: str, author: str = "user", *, author_kind: str = "human"
    ) -> MessagePosted:
        """Add a message to the task's thread and deliver it to the task's agent.

        ``delivered`` on the answer is False when the agent was not connected (it gets the
        message when it connects).
        """
        fields = {"content": content, "author": author, "author_kind": author_kind}
        return await self._send(api.post_message(task_id, fields))

    async def list_messages(self, task_id: str) -> list[Message]:
        """Return the task's messages, oldest first."""
        return await self._send(api.list_messages(task_id))

    async def pause(self, task_id: str) -> TaskControl:
        """Pause the task and tell its agent; :class:`Conflict` if it cannot be paused."""
        return await self._send(api.control(task_id, "pause"))

    async def resume(self, task_id: str) -> TaskControl:
        """Resume a paused task and tell its agent."""
        return await self._send(api.control(task_id, "resume"))

    async def cancel(self, task_id: str) -> TaskControl:
        """Cancel the task and tell its agent to stop."""
        return await self._send(api.control(task_id, "cancel"))

    # --- events

    async def publish(self, task_id: str, events: EventLike | Iterable[EventLike]) -> list[int]:
        """Publish events over REST, all or nothing; return their seqs in the order sent.

        ``events`` is one event or several, as dicts or :class:`EventIn`; events without an
        ``id`` get one. At most 1,000 per call (more is :class:`InvalidRequest`). A re-sent
        id stores nothing new and returns the stored seq. For a stream of events from an
        agent, :meth:`run` is much faster (batched over one connection).
        """
        return await self._send(api.publish(task_id, event_payloads(events)))

    async def events(
        self,
        task_id: str,
        since: int = 0,
        limit: int = 1000,
        types: str | Iterable[str] | None = None,
    ) -> EventPage:
        """Return the task's logged events with ``seq > since`` (at most ``limit``, 1-10,000),
        optionally only the given ``types``."""
        return await self._send(api.events(task_id, since=since, limit=limit, types=types))

    async def state(self, task_id: str) -> TaskState:
        """Return the task's shared state document and its version."""
        return await self._send(api.state(task_id))

    def subscribe(
        self,
        task_id: str,
        *,
        since: int | None = None,
        include_connection_messages: bool = False,
        backoff: Backoff | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        client_id: str | None = None,
    ) -> Subscription:
        """Follow the task's events live; see :class:`Subscription`.

        ``since=None`` starts with what happens from now on; ``since=0`` replays the whole
        log first; ``since=N`` resumes after seq N. Nothing connects until iteration starts.
        """
        self._check_open()
        return Subscription(
            self.url,
            task_id,
            headers=self._headers,
            since=since,
            include_connection_messages=include_connection_messages,
            backoff=backoff or self.delivery.backoff,
            heartbeat_interval=heartbeat_interval,
            connect_timeout=self.delivery.connect_timeout,
            close_timeout=self.delivery.close_timeout,
            client_id=client_id,
        )

    # --- agents at work

    def run(
        self,
        task_id: str,
        *,
        agent: str | Agent,
        name: str | None = None,
        kind: str | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        """Start reporting work on a task as ``agent``; use the :class:`Run` with ``async with``.

        ``agent`` is an :class:`Agent` or an id (``agent_…``); an unknown id is registered by
        the server with ``name`` and ``kind``.
        """
        self._check_open()
        return Run(self, task_id, agent, name=name, kind=kind, parent_run_id=parent_run_id)

    def connect_agent(
        self, agent: str | Agent, *, name: str | None = None, kind: str | None = None
    ) -> "AgentConnection":
        """Keep ``agent`` connected (online, receiving commands) across several runs.

        Without it each run connects and disconnects the agent. Example::

            async with client.connect_agent("agent_worker") as agent:
                while (task := await client.next_task(agent.agent_id)) is not None:
                    async with client.run(task.id, agent=agent.agent_id) as run:
                        ...
        """
        self._check_open()
        agent_id = agent.id if isinstance(agent, Agent) else agent
        return AgentConnection(self, agent_id, name=name, kind=kind)

    async def _acquire_agent(self, agent_id: str, name: str | None, kind: str | None) -> AgentLink:
        """Return the agent's shared connection, starting it for the first user.

        Raises:
            ValueError: ``agent_id`` is not ``agent_`` followed by lowercase letters and digits
                (the server would refuse the connection).
        """
        self._check_open()
        if not (ID_PATTERN.match(agent_id) and agent_id.startswith("agent_")):
            raise ValueError(
                f"invalid agent id {agent_id!r}: expected 'agent_' followed by lowercase "
                "letters and digits"
            )
        found = self._agents.get(agent_id)
        if found is not None and found[0].state is not LinkState.CLOSED:
            link, users = found
            self._agents[agent_id] = (link, users + 1)
            return link
        link = AgentLink(
            self.url,
            agent_id,
            headers=self._headers,
            name=name,
            kind=kind,
            options=self.delivery,
            connector=self._agent_connector,
        )
        link.start()
        self._agents[agent_id] = (link, 1)
        return link

    async def _release_agent(self, link: AgentLink) -> None:
        """Give back a connection; the last user closes it.

        Closing does not wait for acknowledgements: each run flushes its own events before
        it releases the connection.
        """
        found = self._agents.get(link.agent_id)
        if found is None or found[0] is not link:
            await link.close(flush=False)
            return
        users = found[1] - 1
        if users > 0:
            self._agents[link.agent_id] = (link, users)
            return
        del self._agents[link.agent_id]
        await link.close(flush=False)


class AgentConnection:
    """Keeps one agent connected while the ``async with`` block lasts; see
    :meth:`AsyncClient.connect_agent`. Runs of the same agent share the connection.

    :meth:`on_command` shows commands for tasks that no run of this client works on yet
    (a message for an assigned task, an AG-UI ``run`` handed to the agent), so a worker can
    start a run in response.

    Entering waits for the first connection attempt: it raises what retrying cannot fix
    (:class:`TasklineAuthError` for a refused token, close 4401 or 4403;
    :class:`ConnectionReplacedError`, ...); a server that is down is retried in the
    background as before. A connection that fails for good later (a token revoked while
    connected) shows in :attr:`error` and is raised when the block ends without an exception.
    """

    def __init__(
        self, client: AsyncClient, agent_id: str, *, name: str | None, kind: str | None
    ) -> None:
        self.agent_id = agent_id
        self._client = client
        self._name = name
        self._kind = kind
        self._link: AgentLink | None = None
        self._error: TasklineClientError | None = None
        self._callbacks: list[CommandCallback] = []
        self._tasks: set[asyncio.Future[Any]] = set()

    def on_command(self, callback: CommandCallback) -> None:
        """Call ``callback(command)`` for each command about a task that no run claims.

        Such commands are also kept (up to 100) for the run of that task that starts next,
        which then receives their messages. A coroutine function runs as a task; an exception
        in the callback is logged (``taskline.sdk``) and ignored.
        """
        self._callbacks.append(callback)

    def _on_unclaimed(self, command: Command) -> None:
        for callback in list(self._callbacks):
            try:
                outcome = callback(command)
            except Exception:
                logger.exception("agent %s: a command callback failed", self.agent_id)
                continue
            if inspect.isawaitable(outcome):
                task = asyncio.ensure_future(outcome)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def __repr__(self) -> str:
        return f"<AgentConnection {self.agent_id} {'open' if self._link else 'closed'}>"

    @property
    def connected(self) -> bool:
        """True while the WebSocket is up (False while reconnecting)."""
        return self._link is not None and self._link.connected

    @property
    def error(self) -> TasklineClientError | None:
        """What ended the connection for good (no more reconnecting), else None."""
        return self._link.error if self._link is not None else self._error

    async def __aenter__(self) -> Self:
        if self._link is not None:
            raise RuntimeError("this AgentConnection is already open")
        link = await self._client._acquire_agent(self.agent_id, self._name, self._kind)
        try:
            await link.first_attempt()
        except BaseException:
            await self._client._release_agent(link)
            raise
        self._link = link
        self._error = None
        link.add_unclaimed_listener(self._on_unclaimed)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.remove_unclaimed_listener(self._on_unclaimed)
            self._error = link.error
            await self._client._release_agent(link)
            if exc is None and self._error is not None:
                raise self._error


def _section(title: str, subtasks: Iterable[str | Mapping[str, Any]]) -> dict[str, Any]:
    items = [{"title": s} if isinstance(s, str) else dict(s) for s in subtasks]
    return {"title": title, "subtasks": items}


#: The longest one long poll on a request lasts (the server's bound).
_MAX_POLL = 30.0


def _reply(**members: Any) -> dict[str, Any]:
    """An answer's body: the members given (``answer`` always, even null), others if set."""
    return {k: v for k, v in members.items() if k == "answer" or v is not None}
