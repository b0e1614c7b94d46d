"""Telling MCP clients that a task changed: ``notifications/resources/updated`` for the
resource ``taskline://tasks/{id}`` of every task with newly committed events.

:meth:`ResourceWatch.on_committed` is an :class:`~taskline.bus.EventBus` listener, so it hears
of every committed batch, local or from another server process, after its commit. Two kinds
of subscriber are served:

- *Sessions* of the handshake protocol (up to 2025-11-25) that sent ``resources/subscribe``:
  each gets the notification on its session's standalone stream (the Streamable HTTP GET
  stream). A session has one sender task; URIs updated while it is sending are coalesced
  into one notification each, so a busy task cannot queue up more than one per URI.
- *Listen streams* of the 2026-07-28 protocol (``subscriptions/listen``): the SDK's
  ``ListenHandler`` filters them by URI; :class:`ListenBus` is the fan-out it listens on.

Notifications are advisory (MCP has no replay): a client that reconnects reads the resource
again. With nobody subscribed, a batch costs a dictionary lookup.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from taskline.domain.events import WebSocketMessage

__all__ = ["TASK_URI", "ListenBus", "ResourceWatch", "task_uri"]

logger = logging.getLogger("taskline.mcp")

#: The URI template of a task resource.
TASK_URI = "taskline://tasks/{task_id}"
_PREFIX = "taskline://tasks/"


def task_uri(task_id: str) -> str:
    return _PREFIX + task_id


def task_id_of(uri: str) -> str | None:
    """The task id a task resource URI names (None for another URI)."""
    task_id = uri.removeprefix(_PREFIX)
    return task_id if task_id != uri and task_id and "/" not in task_id else None


class ListenBus:
    """The SDK's ``SubscriptionBus`` for ``subscriptions/listen`` streams, which knows whether
    anyone listens (so a committed batch with no listener publishes nothing)."""

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[ServerEvent], None]] = {}

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    async def publish(self, event: ServerEvent) -> None:
        """Hand ``event`` to every listener (they filter and buffer; they never block)."""
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:
                logger.exception("an MCP listen stream refused an event")

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


class _Sender:
    """One session's subscriptions and the task that sends their notifications."""

    def __init__(self, session: ServerSession) -> None:
        self.session = session
        self.uris: set[str] = set()
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def offer(self, uri: str) -> None:
        self._pending.add(uri)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="taskline-mcp-resource-updates")

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, set()
            for uri in sorted(pending):
                try:
                    await self.session.send_resource_updated(uri)
                except Exception:  # the session is going away; its cleanup stops us
                    logger.debug("resources/updated for %s not sent", uri, exc_info=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ResourceWatch:
    """Who subscribed to which task resource, and the bus listener that notifies them."""

    def __init__(self) -> None:
        self.listen_bus = ListenBus()
        self._senders: dict[object, _Sender] = {}
        self._by_uri: dict[str, set[_Sender]] = {}

    def subscribe(self, key: object, session: ServerSession, uri: str) -> bool:
        """Subscribe the session known by ``key`` (its connection) to ``uri``; True when it
        is the session's first subscription (the caller then arranges :meth:`forget`)."""
        sender = self._senders.get(key)
        first = sender is None
        if sender is None:
            sender = self._senders[key] = _Sender(session)
        sender.session = session
        sender.uris.add(uri)
        self._by_uri.setdefault(uri, set()).add(sender)
        return first

    def unsubscribe(self, key: object, uri: str) -> None:
        sender = self._senders.get(key)
        if sender is None:
            return
        sender.uris.discard(uri)
        self._drop(sender, uri)

    async def forget(self, key: object) -> None:
        """The session ended: drop its subscriptions and stop its sender."""
        sender = self._senders.pop(key, None)
        if sender is None:
            return
        for uri in sender.uris:
            self._drop(sender, uri)
        await sender.close()

    async def close(self) -> None:
        for key in list(self._senders):
            await self.forget(key)

    def _drop(self, sender: _Sender, uri: str) -> None:
        holders = self._by_uri.get(uri)
        if holders is not None:
            holders.discard(sender)
            if not holders:
                del self._by_uri[uri]

    async def on_committed(self, messages: Sequence[WebSocketMessage]) -> None:
        """Bus listener: every task with events in the batch is an updated resource."""
        for task_id in dict.fromkeys(m.task_id for m in messages if m.task_id):
            uri = task_uri(task_id)
            for sender in self._by_uri.get(uri, ()):
                sender.offer(uri)
            if self.listen_bus.listening:
                await self.listen_bus.publish(ResourceUpdated(uri=uri))
