"""The synchronous client: one method per REST endpoint, returning domain models."""

from collections.abc import Iterable
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from taskline.domain.models import Agent, Message, Task, TaskPage
from taskline.sdk import _endpoints as api
from taskline.sdk._errors import ClientClosedError
from taskline.sdk._http import Call, transport_errors

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_URL", "Client"]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds allowed for each of connect, read, write and pool acquisition.
DEFAULT_TIMEOUT = 10.0


class _State(Enum):
    OPEN = "open"
    CLOSED = "closed"


def _server_url(url: str) -> str:
    """Return ``url`` without a trailing slash, or raise ``ValueError`` if it is not http(s)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid server URL {url!r}: {exc}") from exc
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ValueError(f"invalid server URL {url!r}: expected http(s)://host[:port]")
    return url.rstrip("/")


class Client:
    """A synchronous Taskline client over HTTP.

    Example::

        with Client("http://127.0.0.1:8000") as taskline:
            task = taskline.create_task("Write the report", tags=["docs"])
            taskline.update_task(task.id, status="in_progress", progress=0.25)

    Args:
        url: the server's base URL; a path prefix (behind a reverse proxy) is kept.
        token: sent as ``Authorization: Bearer <token>`` when given.
        timeout: seconds for each of connect, read, write and pool; ``None`` waits forever.
        transport: an httpx transport to use instead of the network (tests, custom TLS).

    Raises:
        ValueError: ``url`` is not an ``http://`` or ``https://`` URL with a host.

    Every method may raise :class:`ServerUnreachableError` (no answer), an :class:`ApiError`
    subclass (the server refused: :class:`NotFound`, :class:`Conflict`,
    :class:`InvalidRequest`), or :class:`ClientClosedError` after :meth:`close`. Input is
    validated by the server only, so a bad field surfaces as :class:`InvalidRequest` with
    per-field ``errors``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _server_url(url)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self._state = _State.OPEN

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
        """Close the connection pool. Calling it again does nothing; the client cannot reopen."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            self._http.close()

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise ClientClosedError(f"expected an open client, got {self._state.value}")

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

    def update_task(self, task_id: str, **changes: Any) -> Task:
        """Change only the given fields (PATCH); ``None`` clears an optional field.

        A status change the state machine refuses raises :class:`Conflict` whose
        ``allowed`` lists the legal next statuses.
        """
        return self._send(api.update_task(task_id, changes))

    def replace_task(self, task_id: str, title: str, **fields: Any) -> Task:
        """Replace the task's fields (PUT): omitted fields take their defaults.

        Exceptions: an omitted ``status`` or ``sections`` is left unchanged.
        """
        return self._send(api.replace_task(task_id, {"title": title, **fields}))

    def delete_task(self, task_id: str) -> None:
        """Delete the task with its sections and messages; :class:`NotFound` if unknown."""
        self._send(api.delete_task(task_id))

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

    # --- messages

    def post_message(
        self, task_id: str, content: str, author: str = "user", *, author_kind: str = "human"
    ) -> Message:
        """Add a message to the task's thread; ``author_kind`` is human, agent or system."""
        fields = {"content": content, "author": author, "author_kind": author_kind}
        return self._send(api.post_message(task_id, fields))

    def list_messages(self, task_id: str) -> list[Message]:
        """Return the task's messages, oldest first; :class:`NotFound` if the task is unknown."""
        return self._send(api.list_messages(task_id))
