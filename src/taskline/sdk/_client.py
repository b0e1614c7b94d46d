"""The synchronous client: one method per REST endpoint, returning domain models, plus
blocking runs and subscriptions (see ``_sync.py``)."""

from collections.abc import Iterable, Mapping
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from taskline.domain.models import Agent, Message, Section, Subtask, Task, TaskPage
from taskline.domain.requests import Request
from taskline.sdk import _endpoints as api
from taskline.sdk._async_client import AsyncClient, EventLike, event_payloads
from taskline.sdk._config import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Backoff,
    DeliveryOptions,
)
from taskline.sdk._credentials import resolve_token
from taskline.sdk._errors import ClientClosedError
from taskline.sdk._http import Call, IfMatch, request_headers, server_url, transport_errors
from taskline.sdk._models import (
    ClaimedTask,
    EventPage,
    IssuedToken,
    MessagePosted,
    TaskControl,
    TaskState,
)
from taskline.sdk._sync import LoopThread, SyncRun, SyncSubscription

__all__ = ["Client"]

T = TypeVar("T")


class _State(Enum):
    OPEN = "open"
    CLOSED = "closed"


class Client:
    """A synchronous Taskline client over HTTP.

    Example::

        with Client("http://127.0.0.1:8000") as taskline:
            task = taskline.create_task("Write the report", tags=["docs"])
            taskline.update_task(task.id, status="in_progress", progress=0.25)

    Args:
        url: the server's base URL; a path prefix (behind a reverse proxy) is kept.
        token: sent as ``Authorization: Bearer <token>`` on every request and WebSocket
            upgrade. ``None`` (the default): the ``TASKLINE_TOKEN`` environment variable,
            else the token ``taskline login`` stored for this server (see
            :func:`credentials_path`), else none. ``""``: none, without looking.
        timeout: seconds for each of connect, read, write and pool; ``None`` waits forever.
        delivery: buffering, batching, timeouts and backoff of :meth:`run`'s events.
        transport: an httpx transport to use instead of the network (tests, custom TLS; REST
            calls only).

    Raises:
        ValueError: ``url`` is not an ``http://`` or ``https://`` URL with a host.

    Every method may raise :class:`ServerUnreachableError` (no answer), an :class:`ApiError`
    subclass (the server refused: :class:`NotFound`, :class:`Conflict`,
    :class:`InvalidRequest`, :class:`TasklineAuthError` for a missing or refused token or a
    role that may not do it), or :class:`ClientClosedError` after :meth:`close`. Input is
    validated by the server only, so a bad field surfaces as :class:`InvalidRequest` with
    per-field ``errors``.

    :meth:`run` and :meth:`subscribe` (the live features) run an :class:`AsyncClient` on an
    event loop in a background thread, started on first use and stopped by :meth:`close`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        delivery: DeliveryOptions | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = server_url(url)
        self.delivery = delivery or DeliveryOptions()
        self._token = resolve_token(self.url, token) or ""  # "": the live side looks no more
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.url,
            headers=request_headers(self._token),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self._state = _State.OPEN
        self._loop: LoopThread | None = None
        self._live_client: AsyncClient | None = None

    def __repr__(self) -> str:
        return f"<Client {self.url} {self._state.value}>"

    # --- lifecycle

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and the live side's background thread (agent connections
        close without waiting for acknowledgements: leave runs first for that). Calling it
        again does nothing; the client cannot reopen."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            self._http.close()
            loop, live = self._loop, self._live_client
            self._loop = self._live_client = None
            if loop is not None:
                if live is not None:
                    loop.call(live.aclose())
                loop.stop()

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise ClientClosedError(f"expected an open client, got {self._state.value}")

    def _live(self) -> tuple[LoopThread, AsyncClient]:
        """The background loop and the async client living on it (started on first use)."""
        self._check_open()
        if self._loop is None or self._live_client is None:
            self._loop = LoopThread(f"taskline-sdk-{id(self):x}")
            self._live_client = AsyncClient(
                self.url, token=self._token, timeout=self._timeout, delivery=self.delivery
            )
        return self._loop, self._live_client

    def _send(self, call: Call[T]) -> T:
        """Send ``call`` and return its parsed answer; the one place this face does I/O."""
        self._check_open()
        request = call.request(self._http)
        with transport_errors(self.url):
            response = self._http.send(request)
        return call.handle(response)

    # --- service

    def health(self) -> dict[str, Any]:
        """Return the health answer (``status``, ``database``, ``version``).

        A server whose database is down answers 503, raised as :class:`ApiError`.
        """
        return self._send(api.health())

    def create_token(self, username: str, password: str, *, name: str | None = None) -> IssuedToken:
        """Sign in as ``username`` with ``password`` and return a new personal token.

        The token acts as that person (their role) until it expires or is revoked; ``name`` is
        a label for it (which machine, which script). ``taskline login`` stores it. The
        request needs no token of its own.

        Raises:
            TasklineAuthError: wrong username or password (401).
        """
        return self._send(api.create_token(username, password, name))

    # --- tasks

    def list_tasks(
        self,
        status: str | Iterable[str] | None = None,
        agent: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        sort: str = "-created_at",
        limit: int = 50,
        offset: int = 0,
    ) -> TaskPage:
        """Return one page of tasks; ``page.total`` counts every match.

        ``status`` is one status or several (any of them matches). ``q`` searches title and
        description. ``sort`` is a field name, ``-`` prefixed for descending; ``limit`` is
        1-500. An unknown status or sort field raises :class:`InvalidRequest`.
        """
        return self._send(
            api.list_tasks(
                status=status, agent=agent, tag=tag, q=q, sort=sort, limit=limit, offset=offset
            )
        )

    def get_task(self, task_id: str) -> Task:
        """Return the task with its sections and subtasks; :class:`NotFound` if unknown."""
        return self._send(api.get_task(task_id))

    def create_task(self, title: str, **fields: Any) -> Task:
        """Create a task; ``fields`` are the other ``TaskCreate`` fields.

        ``sections`` may be dicts or ``SectionCreate`` models. An unknown field raises
        :class:`InvalidRequest` (the server forbids extras rather than dropping them).
        """
        return self._send(api.create_task({"title": title, **fields}))

    def update_task(self, task_id: str, *, if_match: IfMatch = None, **changes: Any) -> Task:
        """Change only the given fields (PATCH); ``None`` clears an optional field.

        A status change the state machine refuses raises :class:`Conflict` whose
        ``allowed`` lists the legal next statuses.
        ``if_match`` makes the change conditional: a :class:`~taskline.domain.models.Task`
        (its ``version``), a version, an ETag, or ``"*"`` (any version). If the task changed
        since, nothing is changed and :class:`PreconditionFailed` is raised.
        """
        return self._send(api.update_task(task_id, changes, if_match))

    def replace_task(
        self, task_id: str, title: str, *, if_match: IfMatch = None, **fields: Any
    ) -> Task:
        """Replace the task's fields (PUT): omitted fields take their defaults.

        Exceptions: an omitted ``status`` or ``sections`` is left unchanged. Read-only fields
        of a task read before (``id``, ``version``, ``created_at`` ...) may be passed back
        unchanged; sections and subtasks passed with their ``id`` keep it.
        ``if_match`` makes the change conditional: a :class:`~taskline.domain.models.Task`
        (its ``version``), a version, an ETag, or ``"*"`` (any version). If the task changed
        since, nothing is changed and :class:`PreconditionFailed` is raised.
        """
        return self._send(api.replace_task(task_id, {"title": title, **fields}, if_match))

    def delete_task(self, task_id: str, *, if_match: IfMatch = None) -> None:
        """Delete the task with its sections and messages; :class:`NotFound` if unknown.
        ``if_match`` makes the change conditional: a :class:`~taskline.domain.models.Task`
        (its ``version``), a version, an ETag, or ``"*"`` (any version). If the task changed
        since, nothing is changed and :class:`PreconditionFailed` is raised.
        """
        self._send(api.delete_task(task_id, if_match))

    # --- export and import

    def export(self, fmt: str, task_id: str | None = None) -> tuple[str, bytes]:
        """Export every task (or only ``task_id``) as ``json``, ``csv``, ``md`` or ``zip``.

        Returns ``(filename, content)``; the filename is the server's suggestion, reduced to a
        bare name. An unsupported format raises :class:`InvalidRequest` naming the
        supported ones.
        """
        return self._send(api.export(fmt, task_id))

    def import_tasks(self, data: bytes, mode: str = "create") -> dict[str, int]:
        """Import a JSON export; return counts ``tasks``, ``agents``, ``messages``, ``replaced``.

        In ``create`` mode an id that already exists refuses the whole import
        (:class:`Conflict`); ``replace`` overwrites those tasks and agents. Nothing is
        imported when an error is raised.
        """
        return self._send(api.import_tasks(data, mode))

    # --- agents

    def list_agents(self, status: str | None = None) -> list[Agent]:
        """Return every agent, or only those with ``status``."""
        return self._send(api.list_agents(status))

    def get_agent(self, agent_id: str) -> Agent:
        """Return the agent; :class:`NotFound` if unknown."""
        return self._send(api.get_agent(agent_id))

    def create_agent(self, name: str, **fields: Any) -> Agent:
        """Register an agent; ``fields`` are ``id``, ``kind``, ``status``, ``metadata``."""
        return self._send(api.create_agent({"name": name, **fields}))

    def update_agent(self, agent_id: str, **changes: Any) -> Agent:
        """Change only the given fields of the agent (PATCH)."""
        return self._send(api.update_agent(agent_id, changes))

    def delete_agent(self, agent_id: str) -> None:
        """Delete the agent; :class:`NotFound` if unknown."""
        self._send(api.delete_agent(agent_id))

    # --- webhooks (admins; plain JSON documents, as the REST API answers)

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Return the webhooks (without their secrets)."""
        found: list[dict[str, Any]] = (self._send(api.list_webhooks()))["webhooks"]
        return found

    def create_webhook(self, url: str, **fields: Any) -> dict[str, Any]:
        """Add a webhook; ``fields`` are ``events``, ``format``, ``secret``, ``enabled``,
        ``description``. The answer holds its ``secret``, shown only this once."""
        return self._send(api.create_webhook({"url": url, **fields}))

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete the webhook and its delivery log; :class:`NotFound` if unknown."""
        self._send(api.delete_webhook(webhook_id))

    def test_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Send a test delivery; return it after its first attempt."""
        return self._send(api.test_webhook(webhook_id))

    def webhook_deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The webhook's delivery log, newest first."""
        call = api.webhook_deliveries(webhook_id, status=status, limit=limit)
        found: list[dict[str, Any]] = (self._send(call))["deliveries"]
        return found

    def claim(
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
        return self._send(
            api.claim(agent_id=agent_id, tags=tags, assigned=assigned, lease_seconds=lease_seconds)
        )

    def renew_lease(self, task_id: str, *, lease_seconds: float | None = None) -> ClaimedTask:
        """Extend the task's lease (by ``lease_seconds`` from now; default what the claim
        asked for). :class:`LeaseLost` (naming the holder) when this agent no longer holds it.
        """
        return self._send(api.renew_lease(task_id, lease_seconds))

    def release(self, task_id: str) -> Task:
        """Give a claimed task back (pending; unassigned unless it was assigned to this agent
        before the claim). :class:`LeaseLost` when this agent does not hold it."""
        return self._send(api.release(task_id))

    # --- requests (questions and approvals for people)

    def open_request(self, task_id: str, kind: str, question: str, **fields: Any) -> Request:
        """Ask a person on the task; see :meth:`AsyncClient.open_request`."""
        body = {"kind": kind, "question": question, **fields}
        return self._send(api.open_request(task_id, body))

    def get_request(self, request_id: str, *, wait: float = 0) -> Request:
        """The request; with ``wait`` (at most 30 s), once it is no longer open."""
        return self._send(api.get_request(request_id, wait))

    def list_requests(
        self, status: str | Iterable[str] | None = None, *, task_id: str | None = None
    ) -> list[Request]:
        """Requests oldest first (``status="open"``: the inbox), of every task or one."""
        statuses = [status] if isinstance(status, str) else list(status or ())
        return self._send(api.list_requests(statuses, task_id))

    def answer_request(
        self, request_id: str, answer: Any, *, comment: str | None = None
    ) -> Request:
        """Answer a question (people only)."""
        body: dict[str, Any] = {"answer": answer}
        if comment is not None:
            body["comment"] = comment
        return self._send(api.answer_request(request_id, body))

    def approve(
        self,
        request_id: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        comment: str | None = None,
    ) -> Request:
        """Approve an approval, with edited ``arguments`` (None: as asked)."""
        body: dict[str, Any] = {"decision": "approve"}
        if arguments is not None:
            body["arguments"] = dict(arguments)
        if comment is not None:
            body["comment"] = comment
        return self._send(api.answer_request(request_id, body))

    def reject(self, request_id: str, *, comment: str | None = None) -> Request:
        """Reject an approval, saying why in ``comment``."""
        body: dict[str, Any] = {"decision": "reject"}
        if comment is not None:
            body["comment"] = comment
        return self._send(api.answer_request(request_id, body))

    def cancel_request(self, request_id: str, *, reason: str | None = None) -> Request:
        """Cancel an open request (whoever asked it, or a person)."""
        return self._send(api.cancel_request(request_id, reason))

    def next_task(self, agent_id: str) -> Task | None:
        """Return the oldest ``pending`` task assigned to the agent, or None when there is none.

        Raises :class:`NotFound` for an unknown agent.
        """
        return self._send(api.next_task(agent_id))

    # --- sections and subtasks

    def add_section(
        self,
        task_id: str,
        title: str,
        subtasks: Iterable[str | Mapping[str, Any]] = (),
        *,
        position: int | None = None,
    ) -> Section:
        """Add a section, optionally with subtasks (titles or ``SubtaskCreate`` fields).

        ``position`` 0 puts it first; None (default) last. Logs ``task_updated``.
        """
        items = [{"title": s} if isinstance(s, str) else dict(s) for s in subtasks]
        return self._send(api.add_section(task_id, {"title": title, "subtasks": items}, position))

    def rename_section(self, task_id: str, section_id: str, title: str) -> Section:
        """Rename a section; :class:`NotFound` if it is not in the task."""
        return self._send(api.rename_section(task_id, section_id, title))

    def delete_section(self, task_id: str, section_id: str) -> None:
        """Delete a section and its subtasks; :class:`NotFound` if it is not in the task."""
        self._send(api.delete_section(task_id, section_id))

    def add_subtask(
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
        return self._send(api.add_subtask(task_id, section_id, fields, position))

    def update_subtask(self, task_id: str, subtask_id: str, **changes: Any) -> Subtask:
        """Change ``title``, ``done``, ``notes``, or move it to another section
        (``section_id``); logs ``subtask_updated``."""
        return self._send(api.update_subtask(task_id, subtask_id, changes))

    def toggle_subtask(self, task_id: str, subtask_id: str) -> Subtask:
        """Flip the subtask's ``done``; logs ``subtask_updated``."""
        return self._send(api.toggle_subtask(task_id, subtask_id))

    def delete_subtask(self, task_id: str, subtask_id: str) -> None:
        """Delete a subtask; :class:`NotFound` if it is not in the task."""
        self._send(api.delete_subtask(task_id, subtask_id))

    # --- messages and control

    def post_message(
        self, task_id: str, content: str, author: str = "user", *, author_kind: str = "human"
    ) -> MessagePosted:
        """Add a message to the task's thread and deliver it to the task's agent.

        ``author_kind`` is human, agent or system. ``delivered`` on the answer is False when
        the agent was not connected (it gets the message when it connects).
        """
        fields = {"content": content, "author": author, "author_kind": author_kind}
        return self._send(api.post_message(task_id, fields))

    def list_messages(self, task_id: str) -> list[Message]:
        """Return the task's messages, oldest first; :class:`NotFound` if the task is unknown."""
        return self._send(api.list_messages(task_id))

    def pause(self, task_id: str) -> TaskControl:
        """Pause the task (``paused``) and tell its agent; :class:`Conflict` if it cannot be
        paused. ``delivered`` is False when the agent was not connected (queued for it)."""
        return self._send(api.control(task_id, "pause"))

    def resume(self, task_id: str) -> TaskControl:
        """Resume a paused task (``in_progress``) and tell its agent."""
        return self._send(api.control(task_id, "resume"))

    def cancel(self, task_id: str) -> TaskControl:
        """Cancel the task and tell its agent to stop."""
        return self._send(api.control(task_id, "cancel"))

    # --- events

    def publish(self, task_id: str, events: EventLike | Iterable[EventLike]) -> list[int]:
        """Publish events over REST, all or nothing; return their seqs in the order sent.

        ``events`` is one event or several, as dicts or :class:`EventIn`; events without an
        ``id`` get one. At most 1,000 per call (more is :class:`InvalidRequest`). A re-sent
        id stores nothing new and returns the stored seq. For a stream of events from an
        agent, :meth:`run` is much faster (batched over one connection).
        """
        return self._send(api.publish(task_id, event_payloads(events)))

    def events(
        self,
        task_id: str,
        since: int = 0,
        limit: int = 1000,
        types: str | Iterable[str] | None = None,
    ) -> EventPage:
        """Return the task's logged events with ``seq > since`` (at most ``limit``, 1-10,000),
        optionally only the given ``types``."""
        return self._send(api.events(task_id, since=since, limit=limit, types=types))

    def state(self, task_id: str) -> TaskState:
        """Return the task's shared state document and its version."""
        return self._send(api.state(task_id))

    # --- live: subscriptions and runs

    def subscribe(
        self,
        task_id: str,
        *,
        since: int | None = None,
        include_connection_messages: bool = False,
        backoff: Backoff | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> SyncSubscription:
        """Follow the task's events live, blocking; see :meth:`AsyncClient.subscribe`.

        Use it as ``with client.subscribe(task_id, since=0) as events: for event in
        events: ...``; it reconnects and resumes by itself.
        """
        loop, live = self._live()
        subscription = live.subscribe(
            task_id,
            since=since,
            include_connection_messages=include_connection_messages,
            backoff=backoff,
            heartbeat_interval=heartbeat_interval,
        )
        return SyncSubscription(loop, subscription)

    def run(
        self,
        task_id: str,
        *,
        agent: str | Agent,
        name: str | None = None,
        kind: str | None = None,
        parent_run_id: str | None = None,
    ) -> SyncRun:
        """Report work on a task as ``agent`` from sync code: ``with client.run(...) as run:``.

        The same contract as :meth:`AsyncClient.run` and :class:`Run`, with blocking methods.
        """
        loop, live = self._live()
        run = live.run(task_id, agent=agent, name=name, kind=kind, parent_run_id=parent_run_id)
        return SyncRun(loop, run)
