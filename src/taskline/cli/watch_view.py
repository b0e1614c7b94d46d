"""What ``taskline watch`` shows, folded from a task's events (no I/O, no terminal)."""

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from taskline.domain.events import STATUS_EVENTS, WebSocketEventType, WebSocketMessage
from taskline.domain.models import Task

__all__ = ["ToolCallLine", "WatchView"]

E = WebSocketEventType


@dataclass(slots=True)
class ToolCallLine:
    name: str
    state: str = "running"  #: running, done or error
    duration_ms: float | None = None
    detail: str = ""


@dataclass(slots=True)
class WatchView:
    """The latest picture of one task. ``max_tool_calls`` recent calls are kept."""

    task_id: str
    title: str = ""
    status: str = "pending"
    progress: float = 0.0
    progress_message: str = ""
    confidence: float | None = None
    agent_id: str | None = None
    agent_status: str | None = None
    text: str = ""
    text_open: bool = False
    last_seq: int = 0
    connection: str = "connecting"
    max_tool_calls: int = 6
    tool_calls: OrderedDict[str, ToolCallLine] = field(default_factory=OrderedDict)

    def load(self, task: Task) -> None:
        """Start from the task as the REST API gives it."""
        self.title = task.title
        self.status = task.status.value
        self.progress = task.progress
        self.confidence = task.confidence
        self.agent_id = task.assigned_agent_id

    def apply(self, event: WebSocketMessage) -> None:
        """Fold one task event in (connection messages are ignored)."""
        if event.seq is None:
            return
        self.last_seq = event.seq
        data: dict[str, Any] = dict(event.data)
        kind = event.event_type
        if kind == E.PROGRESS_UPDATE:
            self.progress = float(data.get("progress", self.progress))
            self.progress_message = str(data.get("message") or self.progress_message)
            if data.get("confidence") is not None:
                self.confidence = float(data["confidence"])
        elif kind == E.CONFIDENCE_UPDATE:
            self.confidence = float(data["confidence"])
        elif kind in STATUS_EVENTS:
            self.status = STATUS_EVENTS[kind]
            if kind == E.TASK_COMPLETED:
                self.progress = 1.0
        elif kind in {E.TASK_UPDATED, E.TASK_CREATED} and isinstance(data.get("task"), dict):
            self.load(Task.model_validate(data["task"]))
        elif kind == E.AGENT_STATUS_CHANGE:
            self.agent_id = str(data.get("agent_id") or self.agent_id)
            self.agent_status = str(data.get("status"))
        elif kind == E.MESSAGE_START:
            self.text, self.text_open = "", True
        elif kind == E.MESSAGE_DELTA:
            self.text += str(data.get("delta", ""))
        elif kind == E.MESSAGE_END:
            self.text_open = False
        elif kind == E.TOOL_CALL_START:
            self.tool_calls[str(data["tool_call_id"])] = ToolCallLine(str(data.get("name", "?")))
            while len(self.tool_calls) > self.max_tool_calls:
                self.tool_calls.popitem(last=False)
        elif kind == E.TOOL_CALL_END:
            line = self.tool_calls.get(str(data["tool_call_id"]))
            if line is not None:
                line.state = "error" if data.get("error") else "done"
                line.duration_ms = data.get("duration_ms")
                line.detail = str(data.get("error") or "")
