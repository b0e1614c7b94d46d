"""Watching a task's runs as an AG-UI event stream (``GET /api/v1/tasks/{id}/agui``).

The log is folded into a :class:`~taskline.agui.projection.RunView` up to the cursor; a
viewer joining mid-run (no cursor) first gets the view's prelude (``RUN_STARTED``, a
``STATE_SNAPSHOT``, a ``MESSAGES_SNAPSHOT``, the open message and tool calls re-opened), then
the task's events as they are committed, translated to AG-UI and folded into the view so
what it sends stays a valid AG-UI stream. Every frame carries ``id: <seq>``; server
heartbeats become SSE comments. With ``until_run_end`` the stream ends after the first
terminal event (``RUN_FINISHED``/``RUN_ERROR``) it sends, marked by a ``: run-end`` comment.

Each event is translated and encoded once for all viewers (a bounded cache shared by the
watchers of this process), and folded into each viewer's own view.
"""

from collections import OrderedDict
from collections.abc import AsyncIterator

from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder

from taskline.agui.projection import RunView
from taskline.agui.translate import TERMINAL_TYPES, sse_frame, to_agui
from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.realtime import ConnectionManager
from taskline.store.database import Database
from taskline.store.events import EventLog
from taskline.store.tasks import TaskStore

__all__ = ["AguiWatch"]

#: An SSE comment put after a terminal event (clients ignore comments); with ``until`` the
#: body ends there. JSON data never holds a raw newline, so only a real frame can match.
_RUN_END = "\n\n: run-end\n\n"


class AguiWatch:
    """AG-UI watch streams (see the module docstring).

    Args:
        shared_size: translated events kept for all viewers (oldest dropped).
        read_chunk: events read from the log per query while folding it.
    """

    def __init__(
        self,
        database: Database,
        connections: ConnectionManager,
        *,
        shared_size: int = 4096,
        read_chunk: int = 1000,
    ) -> None:
        self.database = database
        self.connections = connections
        self.shared_size = shared_size
        self.read_chunk = read_chunk
        self.encoder = EventEncoder()
        self._shared: OrderedDict[tuple[str, int], tuple[list[BaseEvent], str]] = OrderedDict()

    @property
    def media_type(self) -> str:
        return self.encoder.get_content_type()

    async def prepare(self, task_id: str, since: int | None) -> RunView:
        """Fold the log up to ``since`` (all of it when None); 404 for an unknown task."""
        view = RunView()
        async with self.database.read() as session:
            log = EventLog(session)
            await TaskStore(session).get(task_id)  # 404 before anything is streamed
            head = (await log.head(task_id)).last_seq
            end = head if since is None else min(since, head)
            cursor = 0
            while cursor < end:
                chunk = await log.read(task_id, since=cursor, limit=self.read_chunk)
                chunk = [m for m in chunk if (m.seq or 0) <= end]
                if not chunk:
                    break
                for message in chunk:
                    view.apply(message)
                cursor = chunk[-1].seq or end
        view.last_seq = end
        return view

    async def stream(
        self,
        task_id: str,
        view: RunView,
        *,
        prelude: bool,
        until_run_end: bool,
        user_agent: str | None = None,
    ) -> AsyncIterator[str]:
        """The SSE text of the watch stream, from ``view`` on (see the module docstring)."""
        async with self.connections.follow(
            task_id, since=view.last_seq, user_agent=user_agent
        ) as following:
            if prelude:
                yield self._frames(view.prelude(), view.last_seq or None)
            async for message, _ in following:
                text = self._text(view, message, mark_end=until_run_end)
                if not text:
                    continue
                yield text
                if until_run_end and text.endswith(_RUN_END):
                    return

    def _text(self, view: RunView, message: WebSocketMessage | None, *, mark_end: bool) -> str:
        if message is None or message.seq is None:
            is_heartbeat = (
                message is not None and message.event_type == WebSocketEventType.HEARTBEAT
            )
            return ": heartbeat\n\n" if is_heartbeat else ""
        translated, encoded = self._translated(message, message.seq)
        events = view.apply(message, translated)
        same = len(events) == len(translated) and all(
            a is b for a, b in zip(events, translated, strict=True)
        )
        text = encoded if same else self._frames(events, message.seq)
        if mark_end and text and any(e.type.value in TERMINAL_TYPES for e in events):
            return text[:-2] + _RUN_END
        return text

    def _translated(self, message: WebSocketMessage, seq: int) -> tuple[list[BaseEvent], str]:
        key = (message.id, seq)
        found = self._shared.get(key)
        if found is None:
            events = to_agui(message)
            found = (events, self._frames(events, seq))
            self._shared[key] = found
            if len(self._shared) > self.shared_size:
                self._shared.popitem(last=False)
        return found

    def _frames(self, events: list[BaseEvent], seq: int | None) -> str:
        prefix = f"id: {seq}\n" if seq is not None else ""
        return "".join(prefix + sse_frame(event) for event in events)
