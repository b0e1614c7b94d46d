"""Following one task's events live (``WS /ws/tasks/{id}``), across reconnects.

The cursor rules (:class:`Cursor`, no I/O) decide what a received message means; the
:class:`Subscription` only moves frames and reconnects.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.domain.ids import new_id
from taskline.sdk._config import DEFAULT_HEARTBEAT_INTERVAL, Backoff
from taskline.sdk._errors import CursorVoidError, ServerUnreachableError, TasklineClientError
from taskline.sdk._wire import (
    Dropped,
    decode,
    fatal_close,
    open_socket,
    token_sent,
    websocket_url,
)

__all__ = ["Cursor", "Subscription", "SubscriptionState"]

logger = logging.getLogger("taskline.sdk")

E = WebSocketEventType
_CURSOR_VOID = 4409
_HEARTBEAT = '{"type":"heartbeat"}'


class SubscriptionState(StrEnum):
    NEW = "new"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class Cursor:
    """Where a subscriber stands in a task's log, and what each message means for it.

    ``last_seq`` is the seq of the last task event accepted (None until the first
    ``connection_established`` when starting live).

    Rules:
    - a task event with ``seq <= last_seq`` was seen already: dropped (never yielded twice);
    - a task event with ``seq > last_seq + 1`` means something is missing: :meth:`accept`
      raises :class:`Dropped`, so the caller reconnects with ``since=last_seq`` and the server
      replays the hole (never skipped silently);
    - ``gap`` (the log was trimmed past the cursor) moves the cursor to just before
      ``first_available_seq``: the server sends snapshots and then the retained events.
    """

    __slots__ = ("epoch", "last_seq")

    def __init__(self, since: int | None) -> None:
        self.last_seq = since
        self.epoch: str | None = None

    def accept(self, message: WebSocketMessage) -> bool:
        """Update the cursor for ``message``; return True if it is new (task events) or a
        connection message, False if it must be dropped as a duplicate.

        Raises:
            Dropped: a hole in the seqs (reconnect to have it replayed).
        """
        seq = message.seq
        if seq is None:
            data = message.data
            if message.event_type == E.CONNECTION_ESTABLISHED:
                epoch = data.get("epoch")
                self.epoch = epoch if isinstance(epoch, str) else self.epoch
                head = data.get("last_seq")
                if self.last_seq is None and isinstance(head, int):
                    self.last_seq = head  # started live: events after the head follow
            elif message.event_type == E.GAP:
                first = data.get("first_available_seq")
                if isinstance(first, int):
                    self.last_seq = first - 1
            return True
        if self.last_seq is not None and seq <= self.last_seq:
            return False
        if self.last_seq is not None and seq > self.last_seq + 1:
            raise Dropped(f"missing seqs {self.last_seq + 1}..{seq - 1}; resuming to fill them")
        self.last_seq = seq
        return True


class Subscription:
    """An async iterator over one task's events, resuming by seq after every disconnect.

    Use it with ``async for`` (and preferably ``async with``, which closes the connection)::

        async with client.subscribe(task_id, since=0) as events:
            async for event in events:
                print(event.seq, event.event_type)

    It yields task events (``seq`` set), each seq once and none skipped, in order. After a
    lost connection it reconnects with backoff and resumes with ``since=<last seq>`` and the
    log's ``epoch``; the server replays what was missed. With
    ``include_connection_messages=True`` it also yields the messages with ``seq=None``:
    ``connection_established`` after every (re)connection, ``heartbeat``, ``gap`` and the
    fresh snapshots that follow a gap, personal messages, and a ``connection_closed`` that
    the SDK itself makes when a connection drops (``data``: ``code``, ``reason``).

    Iteration ends (``StopAsyncIteration``) only after :meth:`aclose`. It raises
    :class:`NotFound` for an unknown task, :class:`CursorVoidError` if the server's log is not
    the one the cursor came from, :class:`TasklineAuthError` when the server refuses the token
    (close 4401: none, unknown, expired or revoked) or the connection (4403: e.g. a
    ``client_id`` of someone else) — on the first connection or any later one, never retried —
    and :class:`ServerUnreachableError` once ``backoff``'s ``give_up_after`` runs out.
    Cancelling a waiting ``__anext__`` loses nothing. A consumer slower than the events is fed
    from the log at its own pace; one that stops reading for the server's ``write_timeout`` is
    cut off (close 4008) and resumes where it was.
    """

    def __init__(
        self,
        base_url: str,
        task_id: str,
        *,
        headers: Mapping[str, str],
        since: int | None = None,
        include_connection_messages: bool = False,
        backoff: Backoff | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        connect_timeout: float = 10.0,
        close_timeout: float = 5.0,
        client_id: str | None = None,
    ) -> None:
        if since is not None and since < 0:
            raise ValueError("since must be >= 0 (or None to start live)")
        self.task_id = task_id
        self.base_url = base_url
        self.client_id = client_id or new_id("client")
        self.include_connection_messages = include_connection_messages
        self.state = SubscriptionState.NEW
        self.connections = 0  #: connections established so far
        self.cursor = Cursor(since)
        self._headers = dict(headers)
        self._backoff = backoff or Backoff()
        self._heartbeat_interval = heartbeat_interval
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._websocket: ClientConnection | None = None
        self._ready: deque[WebSocketMessage] = deque()
        self._next_heartbeat = 0.0

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.task_id} {self.state.value} last_seq={self.last_seq} "
            f"connections={self.connections}>"
        )

    @property
    def last_seq(self) -> int | None:
        """The seq of the last task event yielded (or the resume point given)."""
        return self.cursor.last_seq

    @property
    def epoch(self) -> str | None:
        return self.cursor.epoch

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose` (or after an error ended the subscription)."""
        return self.state is SubscriptionState.CLOSED

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; iteration then ends. Calling it again does nothing."""
        self.state = SubscriptionState.CLOSED
        self._ready.clear()
        await self._drop_connection()

    # --- iteration ----------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WebSocketMessage:
        delays = self._backoff.delays()
        down_since: float | None = None
        while True:
            if self._ready:
                return self._ready.popleft()
            if self.closed:
                raise StopAsyncIteration
            try:
                if self._websocket is None:
                    await self._connect()
                    delays = self._backoff.delays()
                    down_since = None
                    continue
                await self._receive(self._websocket)
            except Dropped as exc:
                await self._lost(exc)
                if self.closed:
                    continue
                down_since = down_since or time.monotonic()
                give_up = self._backoff.give_up_after
                if give_up is not None and time.monotonic() - down_since > give_up:
                    await self.aclose()
                    raise ServerUnreachableError(
                        self.base_url, f"no connection for {give_up:g} s ({exc.reason})"
                    ) from None
                await asyncio.sleep(next(delays))
            except TasklineClientError:
                await self.aclose()
                raise

    async def _connect(self) -> None:
        self.state = (
            SubscriptionState.CONNECTING
            if self.connections == 0
            else SubscriptionState.RECONNECTING
        )
        params: dict[str, Any] = {"client_id": self.client_id, "batch": 1}
        if self.cursor.last_seq is not None:
            params["since"] = self.cursor.last_seq
            params["epoch"] = self.cursor.epoch
        url = websocket_url(self.base_url, f"/ws/tasks/{self.task_id}", params)
        websocket = await open_socket(
            url,
            headers=self._headers,
            open_timeout=self._connect_timeout,
            close_timeout=self._close_timeout,
        )
        self._websocket = websocket
        self._next_heartbeat = time.monotonic() + self._heartbeat_interval
        # The first frame is connection_established (or an error and a close).
        await self._receive(websocket)
        self.connections += 1
        self.state = SubscriptionState.LIVE

    async def _receive(self, websocket: ClientConnection) -> None:
        """Read one frame into the ready queue, sending a heartbeat when one is due."""
        while True:
            wait = self._next_heartbeat - time.monotonic()
            if wait <= 0:
                try:
                    await websocket.send(_HEARTBEAT)
                except ConnectionClosed:
                    raise self._closed(websocket) from None
                self._next_heartbeat = time.monotonic() + self._heartbeat_interval
                continue
            try:
                async with asyncio.timeout(wait):
                    text = await websocket.recv()
            except TimeoutError:
                continue
            except ConnectionClosed:
                raise self._closed(websocket) from None
            self._take(text)
            return

    def _take(self, text: str | bytes) -> None:
        try:
            frame = decode(text)
        except ValueError:
            logger.warning("task %s: a frame that is not JSON: %.200r", self.task_id, text)
            return
        items = frame if isinstance(frame, list) else [frame]
        for item in items:
            try:
                message = WebSocketMessage.model_validate(item)
            except ValidationError:
                logger.warning("task %s: an unreadable message: %.200r", self.task_id, item)
                continue
            if message.event_type == E.ERROR and message.data.get("code") == "cursor_void":
                raise CursorVoidError(
                    self.task_id,
                    self.cursor.last_seq,
                    self.cursor.epoch,
                    str(message.data.get("message", "cursor is void")),
                )
            if not self.cursor.accept(message):
                continue
            if message.seq is not None or self.include_connection_messages:
                self._ready.append(message)

    def _closed(self, websocket: ClientConnection) -> Exception:
        code, reason = websocket.close_code, websocket.close_reason or ""
        if code == _CURSOR_VOID:
            return CursorVoidError(self.task_id, self.cursor.last_seq, self.cursor.epoch, reason)
        fatal = fatal_close(
            code, reason, f"task {self.task_id!r}", sent_token=token_sent(self._headers)
        )
        if fatal is not None:
            return fatal
        return Dropped(f"closed by the server ({code} {reason})".rstrip(), code)

    async def _lost(self, exc: Dropped) -> None:
        was_connected = self._websocket is not None
        await self._drop_connection()
        if self.state is SubscriptionState.CLOSED:
            return
        self.state = SubscriptionState.RECONNECTING
        if was_connected and self.include_connection_messages:
            self._ready.append(
                WebSocketMessage(
                    id=new_id("msg"),
                    task_id=self.task_id,
                    event_type=E.CONNECTION_CLOSED,
                    data={"code": exc.code, "reason": exc.reason, "resume_from": self.last_seq},
                    timestamp=datetime.now(UTC),
                    source="sdk",
                    client_id=self.client_id,
                )
            )

    async def _drop_connection(self) -> None:
        websocket, self._websocket = self._websocket, None
        if websocket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(), self._close_timeout)
