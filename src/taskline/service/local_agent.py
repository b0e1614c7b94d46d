"""Agents that run inside the server (the built-in agent) reach it in-process, through the
application layer: no network, no URL, no request headers to trust.

:class:`LocalClient` is the SDK's :class:`~taskline.sdk.AsyncClient` for such code. Its runs
(``client.run(...)``) keep all of the SDK's behaviour (batching, acknowledgements, commands from
people) over a :class:`LocalAgentSocket`, which hands each frame to an
:class:`~taskline.service.agent_session.AgentSession` — the same protocol handler the
``/ws/agents/{id}`` route uses — and receives the hub's frames (welcome, acks, commands)
back. The few REST calls the built-in agent makes (read a task, change it, add a section;
open a request and wait for its answer, cancel it) go straight to the services; any other
REST call raises, naming it.
"""

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar, cast

from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from taskline.domain.actors import Actor, Role
from taskline.domain.models import (
    Section,
    SectionCreate,
    SubtaskCreate,
    Task,
    TaskPatch,
)
from taskline.domain.preconditions import IfMatch
from taskline.domain.requests import RequestSpec
from taskline.realtime.agents import AgentHub
from taskline.sdk import AsyncClient
from taskline.sdk._http import Call, conditional
from taskline.sdk._http import IfMatch as IfMatchArg
from taskline.service.agent_session import AgentSession
from taskline.service.events import EventService
from taskline.service.requests import RequestService
from taskline.service.tasks import TaskService

__all__ = ["LOCAL_URL", "LocalAgentSocket", "LocalClient"]

T = TypeVar("T")

#: The base URL an in-process client reports (nothing is ever sent to it).
LOCAL_URL = "http://taskline.internal"
_OPEN_REQUEST = re.compile(r"^/api/v1/tasks/(?P<task>[^/]+)/requests$")
_REQUEST = re.compile(r"^/api/v1/requests/(?P<request>[^/]+)(?P<cancel>/cancel)?$")


class LocalAgentSocket:
    """One in-process agent connection with a WebSocket client connection's interface."""

    def __init__(self, session: AgentSession) -> None:
        self._session = session
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason: str | None = None

    @classmethod
    async def open(
        cls,
        hub: AgentHub,
        events: EventService,
        agent_id: str,
        name: str | None,
        kind: str | None,
        *,
        role: Role | None,
    ) -> "LocalAgentSocket":
        """Connect ``agent_id`` to the hub, its publishes made with ``role``; the welcome is
        waiting when this returns."""
        socket = cls(AgentSession(hub, events, agent_id, role=role))
        await socket._session.open(socket._deliver, socket._closed_by_server, name=name, kind=kind)
        return socket

    async def _deliver(self, text: str) -> None:
        self._inbox.put_nowait(text)

    async def _closed_by_server(self, code: int, reason: str) -> None:
        self._end(code, reason)

    def _end(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._inbox.put_nowait(None)

    def _error(self) -> ConnectionClosed:
        return ConnectionClosed(Close(self.close_code or 1006, self.close_reason or ""), None)

    async def recv(self) -> str:
        if self.close_code is not None and self._inbox.empty():
            raise self._error()
        text = await self._inbox.get()
        if text is None:
            raise self._error()
        return text

    async def send(self, message: str) -> None:
        if self.close_code is not None:
            raise self._error()
        await self._session.receive(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_code is None:
            self._end(code, reason)
            await self._session.close(code, reason or "agent left")

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return


class LocalClient(AsyncClient):
    """An SDK client for agents running inside the server (see the module docstring).

    Args:
        actor: who the REST calls are made by (the agent).
        requests: where its questions and approvals go (None: it cannot ask).
    """

    def __init__(
        self,
        tasks: TaskService,
        events: EventService,
        hub: AgentHub,
        *,
        actor: Actor,
        requests: RequestService | None = None,
    ) -> None:
        async def connect(agent_id: str, name: str | None, kind: str | None) -> LocalAgentSocket:
            return await LocalAgentSocket.open(hub, events, agent_id, name, kind, role=actor.role)

        # token="": in-process, nothing is sent; no TASKLINE_TOKEN or credentials lookup
        super().__init__(LOCAL_URL, agent_connector=connect, token="")
        self._tasks = tasks
        self._actor = actor
        self._requests = requests

    async def _send(self, call: Call[T]) -> T:
        """The requests calls the SDK's ``run.ask``/``run.approval`` make, in-process; any
        other call raises."""
        if self._requests is not None:
            return cast(T, await self._request_call(self._requests, call))
        raise NotImplementedError(
            f"{call.method} {call.path} is not available to an agent running inside the server"
        )

    async def _request_call(self, requests: RequestService, call: Call[Any]) -> Any:
        params = dict(call.params or {})
        opening = _OPEN_REQUEST.match(call.path)
        if call.method == "POST" and opening is not None:
            spec = RequestSpec.model_validate(call.json or {})
            return await requests.open(self._actor, opening["task"], spec)
        found = _REQUEST.match(call.path)
        if found is not None and call.method == "POST" and found["cancel"]:
            reason = (call.json or {}).get("reason")
            return await requests.cancel(self._actor, found["request"], reason)
        if found is not None and call.method == "GET" and not found["cancel"]:
            wait = float(params.get("wait") or 0)
            if wait > 0:
                return await requests.wait(self._actor, found["request"], wait)
            return await requests.get(self._actor, found["request"])
        raise NotImplementedError(
            f"{call.method} {call.path} is not available to an agent running inside the server"
        )

    async def get_task(self, task_id: str) -> Task:
        self._check_open()
        return await self._tasks.get(task_id)

    async def update_task(
        self, task_id: str, *, if_match: IfMatchArg = None, **changes: Any
    ) -> Task:
        self._check_open()
        fields = TaskPatch.model_validate(changes).changes()
        header = conditional(if_match)
        condition = IfMatch.parse(header["If-Match"]) if header else None
        return await self._tasks.patch(task_id, fields, actor=self._actor, if_match=condition)

    async def add_section(
        self,
        task_id: str,
        title: str,
        subtasks: Iterable[str | Mapping[str, Any]] = (),
        *,
        position: int | None = None,
    ) -> Section:
        self._check_open()
        body = SectionCreate(
            title=title,
            subtasks=[
                SubtaskCreate(title=s) if isinstance(s, str) else SubtaskCreate.model_validate(s)
                for s in subtasks
            ],
        )
        added = await self._tasks.add_section(task_id, body, position=position, actor=self._actor)
        return added.value
