"""What the SDK returns beyond the domain models: event pages, state, control answers, and
the commands people send to a running agent."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue

from taskline.domain.events import WebSocketMessage
from taskline.domain.models import Lease, Message, Task

__all__ = [
    "ClaimedTask",
    "Command",
    "Decision",
    "EventPage",
    "HumanMessage",
    "IssuedToken",
    "MessagePosted",
    "TaskControl",
    "TaskState",
]


class EventPage(BaseModel):
    """A slice of a task's event log, in seq order.

    ``first_seq`` is the oldest seq the server still keeps (1 unless the log was trimmed) and
    ``last_seq`` the newest written; ``events`` may be shorter than ``last_seq - since`` when
    ``limit`` or ``types`` cut it.
    """

    task_id: str
    events: list[WebSocketMessage]
    first_seq: int
    last_seq: int


class TaskState(BaseModel):
    """A task's shared state document; ``version`` counts snapshots and patches (0: never set)."""

    task_id: str
    version: int
    state: JsonValue


class ClaimedTask(Task):
    """A task this agent holds (a claim's or a renewal's answer): ``lease`` says until when
    (``expires_at``) and with which fencing token; publishing events renews it."""

    lease: Lease


class TaskControl(Task):
    """The task after pause, resume or cancel; ``delivered`` is False when the task's agent
    was not connected (the command waits for it) or the task has no agent."""

    delivered: bool = False


class MessagePosted(Message):
    """The stored message; ``delivered`` is False when the task's agent was not connected
    (the message waits for it) or the task has no agent."""

    delivered: bool = False


class IssuedToken(BaseModel):
    """A personal API token the server issued on signing in (``POST /api/v1/auth/token``).

    ``token`` (``tl_…``) is the secret, shown by the server only this once; it is left out of
    the repr. ``expires_at`` None: valid until revoked.
    """

    id: str
    token: str = Field(repr=False)
    name: str | None = None
    role: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HumanMessage:
    """A message a person posted to the task a run works on."""

    id: str
    task_id: str
    author: str
    content: str
    created_at: datetime | None = None

    @classmethod
    def from_wire(cls, task_id: str, raw: dict[str, Any]) -> "HumanMessage":
        """Build from a command's ``message`` object; missing fields become empty strings."""
        created = raw.get("created_at")
        try:
            when = datetime.fromisoformat(created) if isinstance(created, str) else None
        except ValueError:
            when = None
        return cls(
            id=str(raw.get("id", "")),
            task_id=str(raw.get("task_id") or task_id),
            author=str(raw.get("author", "")),
            content=str(raw.get("content", "")),
            created_at=when,
        )


@dataclass(frozen=True, slots=True)
class Command:
    """A command from a person, delivered over the agent connection.

    ``command`` is ``pause``, ``resume``, ``cancel``, ``message`` (then ``message`` is set)
    or ``run`` (an AG-UI run handed to the agent; ``run`` holds the client's
    ``RunAgentInput`` as AG-UI JSON). The hub has already changed the task's status when a
    pause, resume or cancel arrives; the command asks the agent to act on it. Unknown
    commands are passed on as they are.
    """

    id: str
    command: str
    task_id: str
    message: HumanMessage | None = None
    run: dict[str, Any] | None = None

    @classmethod
    def from_wire(cls, frame: dict[str, Any]) -> "Command":
        """Build from a ``{"type": "command", ...}`` frame."""
        task_id = str(frame.get("task_id", ""))
        raw_message = frame.get("message")
        message = (
            HumanMessage.from_wire(task_id, raw_message) if isinstance(raw_message, dict) else None
        )
        raw_run = frame.get("run")
        return cls(
            id=str(frame.get("id", "")),
            command=str(frame.get("command", "")),
            task_id=task_id,
            message=message,
            run=dict(raw_run) if isinstance(raw_run, dict) else None,
        )


class Decision(BaseModel):
    """A person approved an action (:meth:`Run.approval`): run it with ``arguments`` (what
    they edited, else what was asked); ``comment`` is what they said."""

    approved: bool
    arguments: dict[str, Any]
    comment: str | None = None
    request_id: str
