"""What a viewer joining an AG-UI stream mid-run must be told first (no I/O here).

The official client verifies a stream: it must open with ``RUN_STARTED``, and a message or
tool call can only get content after its start. A viewer that joins in the middle of a run
therefore gets a *prelude* built from the log: ``RUN_STARTED``, a ``STATE_SNAPSHOT``, a
``MESSAGES_SNAPSHOT`` of the messages that are complete, then the text message and tool
calls still in progress re-opened with their content so far. After the prelude, live events
follow, translated one by one; events outside any run are left out (the protocol has no
place for them), as is anything the prelude already covers.
"""

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    AssistantMessage,
    BaseEvent,
    FunctionCall,
    MessagesSnapshotEvent,
    RunStartedEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageStartEvent,
    ToolCall,
    ToolCallArgsEvent,
    ToolCallStartEvent,
    ToolMessage,
)

from taskline.agui.translate import TERMINAL_TYPES, event_json, to_agui
from taskline.domain.events import WebSocketMessage
from taskline.domain.json_patch import PatchError, apply_patch

__all__ = ["RunView"]


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    parent_message_id: str | None
    args: str = ""
    ended: bool = False


@dataclass(slots=True)
class RunView:
    """The AG-UI view of a task's log, folded event by event with :meth:`apply`."""

    open: bool = False
    thread_id: str = ""
    run_id: str = ""
    state: Any = None
    messages: list[Any] = field(default_factory=list)  # complete ag_ui messages, in order
    text: dict[str, tuple[str, str]] = field(default_factory=dict)  # open id -> (role, text)
    calls: dict[str, _Call] = field(default_factory=dict)  # started, not yet in a message
    last_seq: int = 0

    def apply(
        self, message: WebSocketMessage, translated: list[BaseEvent] | None = None
    ) -> list[BaseEvent]:
        """Fold one stored event in; return the AG-UI events a live viewer gets for it.

        ``translated`` is ``to_agui(message)`` when the caller has it already (viewers of one
        task share it); the events are not modified.
        """
        self.last_seq = message.seq or self.last_seq
        events = to_agui(message) if translated is None else translated
        out: list[BaseEvent] = []
        for event in events:
            kind = event.type.value
            if kind == "RUN_STARTED":
                if self.open:
                    continue  # a second start inside a run (a resumed task): not a new run
                self._start(event)
            elif not self.open:
                continue  # nothing may stand outside a run
            elif kind in TERMINAL_TYPES:
                self.open = False
                self.text.clear()
                self.calls.clear()
            else:
                self._fold(event)
            out.append(event)
        return out

    def prelude(self) -> list[BaseEvent]:
        """Events that bring a viewer joining now to the current point of the open run."""
        if not self.open:
            return []
        events: list[BaseEvent] = [
            RunStartedEvent(
                thread_id=self.thread_id, run_id=self.run_id, protocol_version=PROTOCOL_VERSION
            ),
            StateSnapshotEvent(snapshot=self.state if self.state is not None else {}),
            MessagesSnapshotEvent(messages=list(self.messages)),
        ]
        for message_id, (role, text) in self.text.items():
            events.append(TextMessageStartEvent(message_id=message_id, role=role))
            if text:
                events.append(TextMessageContentEvent(message_id=message_id, delta=text))
        for call in self.calls.values():
            if call.ended:
                continue
            events.append(
                ToolCallStartEvent(
                    tool_call_id=call.call_id,
                    tool_call_name=call.name,
                    parent_message_id=call.parent_message_id,
                )
            )
            if call.args:
                events.append(ToolCallArgsEvent(tool_call_id=call.call_id, delta=call.args))
        return events

    # --- folding ----------------------------------------------------------------------------

    def _start(self, event: BaseEvent) -> None:
        self.open = True
        self.thread_id = getattr(event, "thread_id", "")
        self.run_id = getattr(event, "run_id", "")
        self.messages = []
        self.text = {}
        self.calls = {}

    def _fold(self, event: BaseEvent) -> None:
        # the commonest events first, without a JSON round trip
        if isinstance(event, TextMessageContentEvent):
            if event.message_id in self.text:
                role, text = self.text[event.message_id]
                self.text[event.message_id] = (role, text + event.delta)
            return
        if isinstance(event, ToolCallArgsEvent):
            if event.tool_call_id in self.calls:
                self.calls[event.tool_call_id].args += event.delta
            return
        data: dict[str, Any] = json.loads(event_json(event))
        kind = data["type"]
        if kind == "STATE_SNAPSHOT":
            self.state = data.get("snapshot")
        elif kind == "STATE_DELTA":
            # the log only holds patches that applied; a mismatch keeps the old view (the
            # server checked the size when it stored them)
            with contextlib.suppress(PatchError):
                self.state = apply_patch(self.state or {}, data["delta"], max_bytes=None)
        elif kind == "TEXT_MESSAGE_START":
            self.text[data["messageId"]] = (data.get("role") or "assistant", "")
        elif kind == "TEXT_MESSAGE_CONTENT" and data["messageId"] in self.text:
            role, text = self.text[data["messageId"]]
            self.text[data["messageId"]] = (role, text + data["delta"])
        elif kind == "TEXT_MESSAGE_END" and data["messageId"] in self.text:
            role, text = self.text.pop(data["messageId"])
            if role == "assistant":
                self.messages.append(AssistantMessage(id=data["messageId"], content=text))
        elif kind == "TOOL_CALL_START":
            self.calls[data["toolCallId"]] = _Call(
                data["toolCallId"], data["toolCallName"], data.get("parentMessageId")
            )
        elif kind == "TOOL_CALL_ARGS" and data["toolCallId"] in self.calls:
            self.calls[data["toolCallId"]].args += data["delta"]
        elif kind == "TOOL_CALL_END" and data["toolCallId"] in self.calls:
            call = self.calls.pop(data["toolCallId"])
            self.messages.append(
                AssistantMessage(
                    id=call.parent_message_id or call.call_id,
                    tool_calls=[
                        ToolCall(
                            id=call.call_id,
                            type="function",
                            function=FunctionCall(name=call.name, arguments=call.args or "{}"),
                        )
                    ],
                )
            )
        elif kind == "TOOL_CALL_RESULT":
            content = (
                data["content"] if isinstance(data["content"], str) else json.dumps(data["content"])
            )
            self.messages.append(
                ToolMessage(id=data["messageId"], content=content, tool_call_id=data["toolCallId"])
            )
