"""People steering agents: pause / resume / cancel a task, and its message thread.

Each is one logged change, then a command to the task's agent (its assigned agent, else an
agent whose current task it is): delivered at once when the agent is connected, else queued
for it by the agent hub.

A request's outcome (answered, approved, rejected, expired, cancelled) goes to the agent that
asked (the request's ``created_by`` when an agent asked, else the task's agent) as a
``request`` frame, when it is connected to this process (:meth:`Steering.on_committed`, a bus
listener: every process sees every commit, the one holding the connection sends). It is not
queued: the request is durable, and an agent that was away reads it back.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from taskline.domain import changes
from taskline.domain.access import Action, require, require_on_task
from taskline.domain.actors import Actor, ActorKind, Role
from taskline.domain.events import REQUEST_EVENTS, WebSocketMessage
from taskline.domain.models import Message, MessageCreate, Task
from taskline.domain.status import TaskStatus
from taskline.realtime.agents import AgentHub
from taskline.service.agents import AgentService
from taskline.service.tasks import SOURCE, TaskService
from taskline.service.writes import Writes
from taskline.store.database import Database
from taskline.store.messages import MessageStore

__all__ = ["Steering"]

logger = logging.getLogger("taskline.steering")

_COMMANDS = {
    TaskStatus.PAUSED: "pause",
    TaskStatus.IN_PROGRESS: "resume",
    TaskStatus.CANCELLED: "cancel",
}


class Steering:
    """Commands and messages from people to the agent working on a task."""

    def __init__(
        self,
        database: Database,
        writes: Writes,
        tasks: TaskService,
        agents: AgentService,
        hub: AgentHub,
    ) -> None:
        self.database = database
        self.writes = writes
        self.tasks = tasks
        self.agents = agents
        self.hub = hub
        self._notices: set[asyncio.Task[None]] = set()

    async def move(self, task_id: str, target: TaskStatus, *, actor: Actor) -> tuple[Task, bool]:
        """Move the task to ``target`` (paused, in progress, cancelled; 409 if the state
        machine refuses) and command its agent; return the task and whether the agent got
        the command now."""
        task = await self.tasks.patch(
            task_id, {"status": target}, actor=actor, action=Action.CONTROL
        )
        return task, await self.command(task_id, _COMMANDS[target])

    async def messages(self, task_id: str) -> list[Message]:
        async with self.database.read() as session:
            return await MessageStore(session).list(task_id)

    async def post(
        self, task_id: str, body: MessageCreate, *, actor: Actor
    ) -> tuple[Message, bool]:
        """Store the message in the task's thread, log it (``custom`` event ``task_message``)
        and deliver it to the task's agent as a ``message`` command (an agent may post only
        on its own tasks)."""
        if actor.role == Role.AGENT:
            workers = await self.agents.workers(task_id)
            require_on_task(actor, Action.POST_MESSAGES, task_id, workers)
        else:
            require(actor, Action.POST_MESSAGES)
        async with self.writes.change() as change:
            if actor.kind == ActorKind.PERSON and "author" not in body.model_fields_set:
                body = body.model_copy(update={"author": actor.id})  # a person signs by name
            message = await MessageStore(change.session).add(task_id, body, actor=str(actor))
            payload = message.model_dump(mode="json")
            await change.record(
                task_id, [changes.message_posted(payload)], actor=actor, source=SOURCE, apply=False
            )
        return message, await self.command(task_id, "message", message=payload)

    async def command(
        self, task_id: str, command: str, *, message: dict[str, Any] | None = None
    ) -> bool:
        """Send ``command`` to the task's agent (queued while it is away); False when the
        task has no agent or it was queued."""
        candidates = await self.agents.agents_for(task_id)
        if not candidates:
            return False
        return await self.hub.send_command(candidates[0], task_id, command, message=message)

    # --- requests' outcomes -----------------------------------------------------------------

    async def on_committed(self, messages: Sequence[WebSocketMessage]) -> None:
        """Bus listener: a request no longer open is sent to the agent that asked, if it is
        connected here (in a task of its own: a listener must not block the bus)."""
        if not self.hub.connected():
            return
        for message in messages:
            if message.event_type not in REQUEST_EVENTS or message.task_id is None:
                continue
            if message.data.get("status") in (None, "open"):
                continue
            asker = _asking_agent(message.data.get("created_by"))
            if asker is not None and not self.hub.is_connected(asker):
                continue  # connected to another process, or away: it reads the request back
            notice = asyncio.create_task(self._tell_asker(message), name="taskline-request-notice")
            self._notices.add(notice)
            notice.add_done_callback(self._notices.discard)

    async def _tell_asker(self, message: WebSocketMessage) -> None:
        task_id = message.task_id
        assert task_id is not None
        agent_id = _asking_agent(message.data.get("created_by"))
        try:
            if agent_id is None:
                candidates = await self.agents.agents_for(task_id)
                if not candidates:
                    return
                agent_id = candidates[0]
            await self.hub.notify(
                agent_id,
                {
                    "type": "request",
                    "event_type": str(message.event_type),
                    "task_id": task_id,
                    "request": message.data,
                },
            )
        except Exception:  # the long poll is the agent's fallback: log, never raise
            logger.exception("could not tell agent %s of request %s", agent_id, message.data)

    async def stop(self) -> None:
        """Wait for the notices being sent (each is bounded by the hub's send timeout)."""
        if self._notices:
            await asyncio.gather(*self._notices, return_exceptions=True)


def _asking_agent(created_by: object) -> str | None:
    """The agent id of ``agent:<id>`` (an agent asked), else None."""
    if isinstance(created_by, str) and created_by.startswith(f"{ActorKind.AGENT}:"):
        return created_by.split(":", 1)[1] or None
    return None
