"""One agent's session (docs/agent-protocol.md), whatever carries it: the WebSocket route
``/ws/agents/{agent_id}``, or an in-process connection of the built-in agent.

:meth:`AgentSession.open` registers the connection with the hub (which welcomes the agent and
sends what waited for it); :meth:`AgentSession.receive` handles one frame from the agent:
``publish`` (stored through the application layer, answered with ``ack`` or ``nack``),
``heartbeat``, ``ping``; anything else gets an ``error`` frame. :meth:`AgentSession.close`
ends it. A frame the agent sends after being replaced by a newer connection is ignored, and
closing a replaced session leaves the newer one alone.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from taskline.domain.access import require_agent_connection
from taskline.domain.actors import Actor, ActorKind, Role
from taskline.domain.errors import InvalidInputError, StorageError, TasklineError
from taskline.domain.events import EventIn
from taskline.domain.json_bounds import JsonBoundsError, check_storable, parse_json
from taskline.domain.models import AgentCreate, utc_now
from taskline.domain.problems import problem_body
from taskline.realtime.agents import AgentConnection, AgentHub
from taskline.service.events import EventService

__all__ = ["MAX_BATCH", "AgentSession"]

#: Events per ``publish`` frame (and per REST publish) at most.
MAX_BATCH = 1000

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


class AgentSession:
    """The server side of one agent connection (see the module docstring)."""

    def __init__(
        self,
        hub: AgentHub,
        events: EventService,
        agent_id: str,
        *,
        connected_by: Actor | None = None,
        role: Role | None = None,
    ) -> None:
        """``connected_by`` is who opened the connection (default: the agent itself);
        ``role`` what the agent's publishes may do (default: ``connected_by``'s role, or
        ``agent``: its own tasks only).

        Raises:
            NotAuthenticatedError, ForbiddenError: ``connected_by`` may not act as the agent
                (see :func:`~taskline.domain.access.require_agent_connection`).
        """
        if connected_by is not None:
            require_agent_connection(connected_by, agent_id)
        self.hub = hub
        self.events = events
        self.agent_id = agent_id
        # what it publishes is the agent's, with the rights of whoever connected it
        if role is None and connected_by is not None:
            # the server's own parts (the demo) connect agents that work for the people
            role = Role.MEMBER if connected_by.kind == ActorKind.SYSTEM else connected_by.role
        if role is None:
            role = Role.AGENT
        self.actor = Actor.agent(agent_id, role)
        self._connection: AgentConnection | None = None

    async def open(
        self, send: Send, close: Close, *, name: str | None = None, kind: str | None = None
    ) -> None:
        """Register the connection (replacing an older one of the agent); the hub welcomes
        the agent. Raises what sending the welcome raises (the agent left meanwhile).

        Raises:
            InvalidInputError: ``name`` or ``kind`` could not be an agent's (too long, blank),
                before anything else happens: an older connection of the agent stays.
        """
        _check_names(self.agent_id, name, kind)
        self._connection = await self.hub.connect(self.agent_id, send, close, name=name, kind=kind)

    @property
    def current(self) -> bool:
        """Whether this session is still the agent's connection (not replaced, not closed)."""
        return self._connection is not None and self.hub.current(self.agent_id) is self._connection

    async def close(self, code: int = 1000, reason: str = "agent left") -> None:
        """End the session; the agent goes offline unless a newer connection took over."""
        if self.current:
            await self.hub.disconnect(self.agent_id, code, reason)
        self._connection = None

    async def receive(self, text: str) -> None:
        """Handle one frame from the agent.

        Raises:
            StorageError: the database is unavailable (the caller closes with 1011; the agent
                resends after reconnecting).
        """
        if not self.current:
            return
        self.hub.touch(self.agent_id)
        try:
            frame: Any = parse_json(text)  # exact integers, any depth: the checks name fields
        except json.JSONDecodeError:
            await self._reply({"type": "error", "code": "invalid_json", "message": "not JSON"})
            return
        except InvalidInputError as exc:  # a string no database stores
            await self._reply({"type": "error", "code": "invalid_json", "message": exc.detail})
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "heartbeat":
            await self._reply({"type": "heartbeat", "server_time": utc_now().isoformat()})
        elif kind == "ping":
            pong: dict[str, Any] = {"type": "pong", "server_time": utc_now().isoformat()}
            if "timestamp" in frame and _echoable(frame["timestamp"]):
                pong["client_timestamp"] = frame["timestamp"]
            await self._reply(pong)
        elif kind == "publish":
            await self._publish(frame)
        else:
            await self._reply(
                {
                    "type": "error",
                    "code": "unknown_type",
                    "message": f"unknown message type {kind!r}; send publish, heartbeat or ping",
                }
            )

    async def _publish(self, frame: dict[str, Any]) -> None:
        batch_id = frame.get("batch_id")
        task_id = frame.get("task_id")
        try:
            if not _echoable(batch_id):  # it could not be written back in the ack or nack
                batch_id = None
                raise InvalidInputError(
                    "batch_id: must be a storable JSON value (an integer within 64 bits, …)",
                    field="batch_id",
                )
            if not isinstance(task_id, str):
                raise InvalidInputError("task_id: required", field="task_id")
            events = self._events(frame.get("events"))
            committed = await self.events.publish(
                task_id, events, actor=self.actor, source=f"agent:{self.agent_id}"
            )
        except StorageError:
            raise
        except TasklineError as exc:
            body = problem_body(exc)
            await self._reply(
                {
                    "type": "nack",
                    "batch_id": batch_id,
                    "task_id": task_id if _echoable(task_id) else None,
                    "status": body["status"],
                    "error": body,
                }
            )
            return
        seqs = [m.seq for m in committed]
        await self._reply(
            {
                "type": "ack",
                "batch_id": batch_id,
                "task_id": task_id,
                "seqs": seqs,
                "last_seq": max(s or 0 for s in seqs),
            }
        )

    def _events(self, raw: Any) -> list[EventIn]:
        """The frame's events, each attributed to this agent unless it names one."""
        if not isinstance(raw, list) or not raw or len(raw) > MAX_BATCH:
            raise InvalidInputError(
                f"events: send a list of 1 to {MAX_BATCH} events", field="events"
            )
        events = []
        for index, item in enumerate(raw):
            try:
                event = EventIn.model_validate(item)
            except ValidationError as exc:
                first = exc.errors()[0]
                path = ".".join(str(p) for p in ("events", index, *first["loc"]))
                raise InvalidInputError(f"{path}: {first['msg']}", field=path) from None
            if event.agent_id is None:
                event = event.model_copy(update={"agent_id": self.agent_id})
            events.append(event)
        return events

    async def _reply(self, frame: dict[str, Any]) -> None:
        await self.hub.reply(self.agent_id, frame)


def _echoable(value: Any) -> bool:
    """Whether a ping's ``timestamp`` (or a publish's ``batch_id``) can come back in the
    answer: when it is storable (an integer beyond 64 bits, say, could not be written back)."""
    try:
        check_storable(value)
    except JsonBoundsError:
        return False
    return True


def _check_names(agent_id: str, name: str | None, kind: str | None) -> None:
    """Check the name and kind an agent connects with as registering it would (they name a
    new agent): a kind of 65 characters or a blank name used to fail inside the hub, with a
    1011 for the agent and a traceback in the log."""
    try:
        AgentCreate(id=agent_id, name=name or agent_id, kind=kind or "generic")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None
