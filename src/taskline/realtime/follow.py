"""Following a task from code: its events, in seq order, at the pace the reader pulls them.

:meth:`ConnectionManager.follow <taskline.realtime.manager.ConnectionManager.follow>` yields
a :class:`Following`: an async iterator of :class:`Delivered` items — each envelope (task
events and connection messages alike; None for a queued personal message, which is only a
frame) with its JSON frame. The SSE stream, the AG-UI watch stream and the AG-UI gateway read
tasks this way. A reader that pulls slowly is fed from the log at its pace, like any
subscriber; one that stops pulling for the write timeout is closed (iteration then ends).
"""

import asyncio
import time
from collections import deque
from typing import NamedTuple

from taskline.domain.events import WebSocketMessage
from taskline.realtime.subscriber import Pending, Subscriber

__all__ = ["Delivered", "Following"]


class Delivered(NamedTuple):
    """One item of a followed task: the envelope (None for a bare frame) and its JSON."""

    message: WebSocketMessage | None
    frame: str


class Following:
    """The reading end of one subscription (see the module docstring)."""

    def __init__(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber
        self._buffer: deque[Delivered] = deque()

    @property
    def client_id(self) -> str:
        return self.subscriber.client_id

    @property
    def close_reason(self) -> str | None:
        """Why the server ended the subscription (None while it goes on)."""
        return self.subscriber.close_reason

    async def receive(self, timeout: float | None = None) -> Delivered | None:
        """The next item; None if none came within ``timeout`` seconds (None: wait).

        Receiving counts as the reader's activity (an SSE client cannot talk back).

        Raises:
            StopAsyncIteration: the subscription ended (see :attr:`close_reason`).
        """
        self.subscriber.last_seen = time.monotonic()
        if not self._buffer:
            try:
                items = await asyncio.wait_for(self.subscriber.next_items(), timeout)
            except TimeoutError:
                return None
            if not items:
                raise StopAsyncIteration
            self._buffer.extend(_delivered(items))
        return self._buffer.popleft()

    def drain(self) -> list[Delivered]:
        """Everything that has arrived and not been received yet, without waiting."""
        items = list(self._buffer)
        self._buffer.clear()
        items.extend(_delivered(self.subscriber.take()))
        return items

    def __aiter__(self) -> "Following":
        return self

    async def __anext__(self) -> Delivered:
        item = await self.receive()
        assert item is not None
        return item


def _delivered(items: list[Pending]) -> list[Delivered]:
    return [
        Delivered(*item) if isinstance(item, tuple) else Delivered(None, item) for item in items
    ]
