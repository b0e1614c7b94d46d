"""The ConnectionManager: who is subscribed to what, and getting each of them every event.

Delivery contract (design.md):
- Live events arrive from the bus as committed batches. Each is encoded once and offered to
  every subscriber of its task; a subscriber accepts only the next seq it expects, skips
  duplicates, and when it sees a jump it reads the missing events from the log first.
- A subscriber is registered *before* the log's head is read, so events committed during the
  connect and the replay are held (within its byte budget; past it they are read from the log
  again) and released after it: no gap, no duplicate.
- Each connection has its own outbox, bounded in bytes (``outbox_bytes``). A subscriber that
  reads more slowly than events arrive is not cut off: past the bound it stops taking live
  events and catches up from the log at the pace it drains, then rejoins live with no gap and
  no duplicate (:mod:`taskline.realtime.delivery` has the rules). Only a connection that takes
  no bytes at all for ``write_timeout`` seconds while frames wait (a reader that stopped) is
  closed, with 4008; it can resume with ``since``. Nobody else ever waits for it.
- Draining: a connection that offers a direct channel (:mod:`taskline.realtime.channel`) has no
  writer task. Its outbox marks it dirty, and one flush per ``flush_interval`` writes every
  dirty connection's pending frames as ready-made bytes, built once and shared by all
  subscribers that have the same frames pending. Other connections (SSE, other ASGI servers)
  have a writer task that awaits their ``send`` frame by frame.
- Personal messages are not task events: they go to the client's own connection, or to its
  offline queue (``offline_queue_size`` per client, oldest dropped and counted) while away.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from taskline.domain.errors import NotFoundError
from taskline.domain.events import ConnectionInfo, WebSocketEventType, WebSocketMessage
from taskline.domain.ids import new_id
from taskline.domain.models import Task, utc_now
from taskline.realtime.channel import DirectChannel, direct_channel, text_frame
from taskline.realtime.close_codes import CloseCode
from taskline.realtime.delivery import Verdict
from taskline.realtime.offline import OfflineQueues
from taskline.realtime.recent import RecentEvents
from taskline.realtime.resume import ResumeKind, plan_resume
from taskline.realtime.subscriber import (
    Formatter,
    Pending,
    Subscriber,
    SubscriberState,
    frame_size,
)
from taskline.store.database import Database
from taskline.store.events import EventLog, LogHead
from taskline.store.tasks import TaskStore

__all__ = ["BOARD_EVENTS", "ConnectionManager", "Sender"]

logger = logging.getLogger("taskline.realtime")
E = WebSocketEventType

#: Task-level changes the board stream (/ws/board) carries.
BOARD_EVENTS = frozenset(
    {
        E.TASK_CREATED,
        E.TASK_UPDATED,
        E.TASK_DELETED,
        E.TASK_STARTED,
        E.TASK_PAUSED,
        E.TASK_RESUMED,
        E.TASK_COMPLETED,
        E.TASK_FAILED,
        E.TASK_CANCELLED,
        E.PROGRESS_UPDATE,
        E.CONFIDENCE_UPDATE,
        E.AGENT_STATUS_CHANGE,
        E.SUBTASK_UPDATED,
    }
)

#: Writes one text frame to a connection (WebSocket ``send_text`` or an SSE queue).
Sender = Callable[[str], Awaitable[None]]
#: Closes a connection with a code and a reason.
Closer = Callable[[int, str], Awaitable[None]]


def encode(message: WebSocketMessage) -> str:
    """The JSON text of an envelope, computed once per event and shared by all subscribers."""
    return message.model_dump_json()


def _notice(
    event_type: WebSocketEventType,
    data: dict[str, Any],
    *,
    task_id: str | None = None,
    client_id: str | None = None,
) -> WebSocketMessage:
    """A connection message (not from the log: ``seq`` is None)."""
    return WebSocketMessage(
        id=new_id("msg"),
        event_type=event_type,
        data=data,
        timestamp=utc_now(),
        task_id=task_id,
        client_id=client_id,
        source="server",
    )


class _Connection:
    """The I/O side of a subscriber: its direct channel or writer task, and how to close it."""

    __slots__ = ("catching_up", "channel", "closer", "subscriber", "writer")

    def __init__(
        self, subscriber: Subscriber, closer: Closer, channel: DirectChannel | None
    ) -> None:
        self.subscriber = subscriber
        self.closer = closer
        self.channel = channel
        self.writer: asyncio.Task[None] | None = None
        self.catching_up = False


class ConnectionManager:
    """Subscriptions, fan-out, replay, heartbeats, stale cleanup and offline queues.

    Args:
        database: where the event log is read from for replays and catch-ups.
        heartbeat_interval: seconds between server heartbeats to every connection.
        stale_after: a connection with no client frame for this long is closed (4408).
        write_timeout: a connection that takes no bytes for this long while frames wait for
            it (a reader that stopped) is closed (4008).
        outbox_bytes: bytes of frames a connection may have waiting; past it, the subscriber
            catches up from the log at its own pace instead of taking live events.
        offline_queue_size: personal messages kept per offline client (oldest dropped).
        offline_queue_ttl: seconds an offline client's queue is kept.
        flush_interval: seconds between writes to direct-channel connections (0: at the end of
            the current loop iteration). Frames committed meanwhile go out together: a
            ``batch`` subscriber gets them as one array frame, others as consecutive frames in
            one write.
        recent_bytes: bytes of the newest events kept in memory (with their frames) over all
            tasks, so that catching up and resuming read them there instead of the log;
            ``recent_task_bytes`` per task.
        writer_grace: seconds a writer task may take to finish when its connection is closed.
        close_timeout: seconds a connection's close may take before it is given up.
    """

    def __init__(
        self,
        database: Database,
        *,
        # timing
        heartbeat_interval: float = 20.0,
        stale_after: float = 300.0,
        write_timeout: float = 30.0,
        flush_interval: float = 0.01,
        writer_grace: float = 1.0,
        close_timeout: float = 5.0,
        # limits
        outbox_bytes: int = 1024 * 1024,
        offline_queue_size: int = 100,
        offline_queue_ttl: float = 86_400.0,
        recent_bytes: int = 64 * 1024 * 1024,
        recent_task_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.database = database
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.write_timeout = write_timeout
        self.outbox_bytes = outbox_bytes
        self.flush_interval = flush_interval
        self.writer_grace = writer_grace
        self.close_timeout = close_timeout
        self._dirty: dict[str, None] = {}  # client ids with frames to flush, in order
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self.offline = OfflineQueues(size=offline_queue_size, ttl=offline_queue_ttl)
        self.recent = RecentEvents(task_bytes=recent_task_bytes, total_bytes=recent_bytes)
        self._connections: dict[str, _Connection] = {}
        self._by_task: dict[str, set[Subscriber]] = defaultdict(set)
        self._board: set[Subscriber] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._epoch: str | None = None
        self.started_at = time.time()
        self.stats = {
            "connections_opened": 0,
            "caught_up_from_log": 0,
            "slow_consumers_closed": 0,
            "stale_closed": 0,
            "board_resyncs": 0,
        }

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the heartbeat/stale-cleanup loop and the write-timeout watchdog."""
        self._loops = [
            asyncio.create_task(self._heartbeat_loop(), name="taskline-heartbeat"),
            asyncio.create_task(self._write_watchdog(), name="taskline-write-watchdog"),
        ]

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and stop background work."""
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        await asyncio.gather(
            *(
                self.disconnect(client_id, CloseCode.GOING_AWAY, "server shutting down")
                for client_id in list(self._connections)
            ),
            return_exceptions=True,
        )
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    async def epoch(self) -> str:
        if self._epoch is None:
            async with self.database.read() as session:
                self._epoch = await EventLog(session).epoch()
        return self._epoch

    # --- connecting -------------------------------------------------------------------------

    async def connect(
        self,
        websocket: WebSocket,
        task_id: str | None,
        client_id: str | None = None,
        *,
        since: int | None = None,
        epoch: str | None = None,
        batch: bool = False,
    ) -> Subscriber | None:
        """Register an accepted WebSocket for ``task_id`` (``None``: the board).

        See :meth:`attach` for what happens; this only adapts the WebSocket to it.
        """

        async def closer(code: int, reason: str) -> None:
            if websocket.application_state != WebSocketState.DISCONNECTED:
                await websocket.close(code, reason)

        client = websocket.client
        return await self.attach(
            websocket.send_text,
            closer,
            task_id,
            client_id,
            since=since,
            epoch=epoch,
            batch=batch,
            user_agent=websocket.headers.get("user-agent"),
            remote_address=f"{client.host}:{client.port}" if client else None,
            channel=direct_channel(websocket.scope),
        )

    async def attach(
        self,
        sender: Sender,
        closer: Closer,
        task_id: str | None,
        client_id: str | None = None,
        *,
        since: int | None = None,
        epoch: str | None = None,
        batch: bool = False,
        user_agent: str | None = None,
        remote_address: str | None = None,
        formatter: Formatter | None = None,
        channel: DirectChannel | None = None,
    ) -> Subscriber | None:
        """Register a connection to a task (``task_id``) or to the board (``None``).

        Queues ``connection_established`` and the client's offline personal messages, then
        starts the replay from ``since`` (after a ``gap`` and snapshots if the log was trimmed
        past it), which runs in the background at the pace the connection drains; live events
        follow it with no gap and no duplicate. Returns None (after closing the connection) for
        an unknown task or a void cursor.
        """
        log_epoch = await self.epoch()
        client_id = client_id or new_id("client")
        if client_id in self._connections:
            await self.disconnect(client_id, CloseCode.NORMAL, "replaced by a new connection")
        if formatter is not None:
            channel = None  # formatted frames (SSE) are not WebSocket text frames
        ready = partial(self._mark_dirty, client_id) if channel is not None else None
        subscriber = Subscriber(
            client_id,
            task_id,
            max_bytes=self.outbox_bytes,
            batch=batch,
            user_agent=user_agent,
            remote_address=remote_address,
            formatter=formatter,
            on_ready=ready,
        )
        head = LogHead(1, 0)
        if task_id is not None:
            # registered before the head is read: whatever commits from now on is offered
            self._by_task[task_id].add(subscriber)
            try:
                async with self.database.read() as session:
                    if not await TaskStore(session).exists(task_id):
                        raise NotFoundError("task", task_id)
                    head = await EventLog(session).head(task_id)
            except BaseException as exc:
                self._unregister(subscriber)
                if not isinstance(exc, NotFoundError):
                    raise
                await closer(CloseCode.UNKNOWN_TASK, f"task {task_id!r} does not exist")
                return None
        connection = _Connection(subscriber, closer, channel)
        self._connections[client_id] = connection
        if channel is not None:
            channel.set_writable_callback(ready)
        else:
            connection.writer = asyncio.create_task(self._write(connection, sender))
        self.stats["connections_opened"] += 1
        established = {
            "client_id": client_id,
            "task_id": task_id,
            "epoch": log_epoch,
            "last_seq": head.last_seq if task_id else None,
            "first_seq": head.first_seq if task_id else None,
            "server_time": datetime.now(UTC).isoformat(),
            "heartbeat_interval": self.heartbeat_interval,
            "stale_after": self.stale_after,
        }
        self._queue(
            subscriber,
            _notice(E.CONNECTION_ESTABLISHED, established, task_id=task_id, client_id=client_id),
        )
        self._deliver_offline(subscriber)
        if task_id is None:
            subscriber.delivery.begin_board()
            self._board.add(subscriber)
            return subscriber
        plan = plan_resume(
            since,
            first_seq=head.first_seq,
            last_seq=head.last_seq,
            client_epoch=epoch,
            log_epoch=log_epoch,
        )
        if plan.kind == ResumeKind.VOID:
            self._queue(
                subscriber,
                _notice(
                    E.ERROR,
                    {
                        "code": "cursor_void",
                        "message": f"cursor since={since} epoch={epoch} does not belong to this "
                        f"log (epoch {log_epoch}, last seq {head.last_seq}); reconnect without "
                        "since, or with since=0 to replay everything",
                    },
                    task_id=task_id,
                    client_id=client_id,
                ),
            )
            await self.disconnect(client_id, CloseCode.EPOCH_MISMATCH, "cursor is void")
            return None
        if plan.kind == ResumeKind.GAP:
            await self._announce_gap(subscriber, since or 0, plan.first_available)
        if subscriber.release(plan.replay_after, head.last_seq) == Verdict.READ_LOG:
            self._spawn(self._catch_up(connection))
        return subscriber

    async def disconnect(
        self, client_id: str, code: int = CloseCode.NORMAL, reason: str = ""
    ) -> bool:
        """Forget a connection, close it with ``code`` and start its offline-queue clock.

        Returns False if the client was not connected. Never raises for an already-closed
        socket.
        """
        connection = self._connections.pop(client_id, None)
        if connection is None:
            return False
        subscriber = connection.subscriber
        subscriber.close_reason = reason
        self._unregister(subscriber)
        self.offline.went_offline(client_id, now=time.monotonic())
        subscriber.close()
        if connection.channel is not None:
            # what is already queued (an error before a close, say) still goes out first
            self._dirty.pop(client_id, None)
            connection.channel.set_writable_callback(None)
            self._flush_connection(connection, {})
        writer = connection.writer
        if writer is not None and writer is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout=self.writer_grace)
            except (TimeoutError, asyncio.CancelledError, Exception):
                writer.cancel()
        await self._close_quietly(connection.closer, code, reason)
        return True

    # --- sending ----------------------------------------------------------------------------

    async def send_personal_message(self, client_id: str, message: dict[str, Any]) -> bool:
        """Send ``message`` to one client; queue it if the client is offline.

        Returns True if it went to a live connection, False if it was queued.
        """
        frame = encode(_notice(E.PERSONAL_MESSAGE, message, client_id=client_id))
        connection = self._connections.get(client_id)
        if connection is not None and self._queue(connection.subscriber, frame):
            return True
        self.offline.push(client_id, frame, now=time.monotonic())
        return False

    async def broadcast_to_task(
        self, task_id: str, messages: WebSocketMessage | Sequence[WebSocketMessage]
    ) -> int:
        """Deliver ``messages`` (committed events of ``task_id`` in seq order, or seq-less
        notices) to the task's subscribers; return how many subscribers were offered them.

        Each event is encoded once. A run of consecutive seqs is also joined once, and a
        batch-mode subscriber that is up to date takes it as one outbox entry (one seq check,
        one wake-up) instead of one per event.
        """
        if isinstance(messages, WebSocketMessage):
            messages = [messages]
        subscribers = self._by_task.get(task_id)
        if not subscribers or not messages:
            return 0
        events = [m for m in messages if m.seq is not None]
        for notice in (m for m in messages if m.seq is None):
            for subscriber in list(subscribers):
                self._queue(subscriber, notice)
        if not events:
            return len(subscribers)
        frames = [encode(m) for m in events]
        sizes = [frame_size(f) for f in frames]
        seqs = [m.seq or 0 for m in events]
        self.recent.add(task_id, events, frames, sizes)
        chunk: str | None = None
        chunk_size = sum(sizes)
        first, last = seqs[0], seqs[-1]
        consecutive = last - first == len(events) - 1
        for subscriber in list(subscribers):
            if subscriber.formatter is not None:
                items: Sequence[Pending] = [(m, f) for m, f in zip(events, frames, strict=True)]
            else:
                if consecutive and subscriber.batch:
                    chunk = chunk if chunk is not None else ",".join(frames)
                    if subscriber.offer_chunk(chunk, first, last, chunk_size) is not None:
                        continue
                items = frames
            if subscriber.offer(items, seqs, sizes) == Verdict.READ_LOG:
                self._fell_behind(subscriber)
        return len(subscribers)

    async def on_committed(self, messages: Sequence[WebSocketMessage]) -> None:
        """Bus listener: fan out a committed batch to its task's subscribers and the board."""
        by_task: dict[str, list[WebSocketMessage]] = defaultdict(list)
        for message in messages:
            if message.task_id:
                by_task[message.task_id].append(message)
        for task_id, batch in by_task.items():
            await self.broadcast_to_task(task_id, batch)
        if self._board:
            board = [m for m in messages if m.event_type in BOARD_EVENTS]
            for message in board:
                frame = encode(message)
                size = frame_size(frame)
                for subscriber in list(self._board):
                    item = subscriber.pending(message, frame)
                    if subscriber.offer_board(item, size) == Verdict.BEHIND:
                        self._resync_board(subscriber)

    def touch(self, client_id: str) -> None:
        """Record client activity (any frame received)."""
        connection = self._connections.get(client_id)
        if connection is not None:
            connection.subscriber.last_seen = time.monotonic()

    def reply(self, client_id: str, event_type: WebSocketEventType, data: dict[str, Any]) -> None:
        """Queue a connection message (heartbeat reply, error) to one client."""
        connection = self._connections.get(client_id)
        if connection is not None:
            subscriber = connection.subscriber
            self._queue(
                subscriber,
                _notice(event_type, data, task_id=subscriber.task_id, client_id=client_id),
            )

    # --- inspection -------------------------------------------------------------------------

    def get_task_connections(self, task_id: str) -> list[ConnectionInfo]:
        """The live connections subscribed to ``task_id``."""
        return [
            self._info(s)
            for s in self._by_task.get(task_id, ())
            if s.client_id in self._connections
        ]

    def get_connection_info(self, client_id: str) -> ConnectionInfo | None:
        connection = self._connections.get(client_id)
        return self._info(connection.subscriber) if connection else None

    def get_stats(self) -> dict[str, Any]:
        """Counts of connections, subscribers per task, queues and delivery counters."""
        subscribers = [c.subscriber for c in self._connections.values()]
        return {
            "connections": len(self._connections),
            "board_connections": len(self._board),
            "tasks": {task_id: len(subs) for task_id, subs in self._by_task.items()},
            "offline_queues": self.offline.stats(),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "bytes_pending": sum(s.delivery.pending_bytes for s in subscribers),
            "catching_up": sum(1 for s in subscribers if s.state == SubscriberState.REPLAYING),
            "peak_bytes_pending": max((s.delivery.peak_bytes for s in subscribers), default=0),
            "recent_events": {
                "tasks": len(self.recent),
                "bytes": self.recent.bytes,
                "hits": self.recent.hits,
                "misses": self.recent.misses,
            },
            **self.stats,
        }

    def all_connections(self) -> list[ConnectionInfo]:
        return [self._info(c.subscriber) for c in self._connections.values()]

    # --- internals --------------------------------------------------------------------------

    def _info(self, subscriber: Subscriber) -> ConnectionInfo:
        idle = time.monotonic() - subscriber.last_seen
        delivery = subscriber.delivery
        return ConnectionInfo(
            client_id=subscriber.client_id,
            task_id=subscriber.task_id,
            connected_at=datetime.fromtimestamp(subscriber.connected_at, UTC),
            last_seen=datetime.fromtimestamp(time.time() - idle, UTC),
            user_agent=subscriber.user_agent,
            remote_address=subscriber.remote_address,
            messages_sent=subscriber.messages_sent,
            outbox_depth=len(delivery),
            bytes_pending=delivery.pending_bytes,
            state=delivery.state.value,
            caught_up_from_log=delivery.catch_ups,
        )

    def _unregister(self, subscriber: Subscriber) -> None:
        """Remove a subscriber from the fan-out (its task's set, or the board)."""
        if subscriber.task_id is not None:
            subscribers = self._by_task.get(subscriber.task_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._by_task[subscriber.task_id]
        self._board.discard(subscriber)

    def _queue(self, subscriber: Subscriber, item: WebSocketMessage | str) -> bool:
        """Queue a connection message (or an already encoded frame) outside the seq order.

        Returns False (and closes the connection, 4008) when the subscriber's notices alone
        are past twice its byte bound.
        """
        if isinstance(item, str):
            pending = subscriber.pending(None, item)
            size = frame_size(item)
        else:
            frame = encode(item)
            pending = subscriber.pending(item, frame)
            size = frame_size(frame)
        if subscriber.notice(pending, size) == Verdict.CLOSE:
            self._cut(subscriber, f"more than {2 * self.outbox_bytes} bytes of messages unread")
            return False
        return True

    def _fell_behind(self, subscriber: Subscriber) -> None:
        """A live subscriber passed its bound or saw a jump: catch up from the log."""
        connection = self._connections.get(subscriber.client_id)
        if connection is None or connection.subscriber is not subscriber:
            return
        self.stats["caught_up_from_log"] += 1
        self._spawn(self._catch_up(connection))

    def _resync_board(self, subscriber: Subscriber) -> None:
        """A board subscriber dropped events: tell it to reload the board."""
        self.stats["board_resyncs"] += 1
        self._queue(
            subscriber,
            _notice(
                E.GAP,
                {
                    "board": True,
                    "message": "board events were dropped while this connection was behind; "
                    "reload the task list",
                },
                client_id=subscriber.client_id,
            ),
        )

    def _cut(self, subscriber: Subscriber, why: str) -> None:
        """Close a connection that stopped reading (4008); it may resume with ``since``."""
        if subscriber.state == SubscriberState.CLOSED:
            return
        self.stats["slow_consumers_closed"] += 1
        logger.warning("closing slow consumer %s: %s", subscriber.client_id, why)
        self._spawn(
            self.disconnect(
                subscriber.client_id,
                CloseCode.SLOW_CONSUMER,
                f"{why}; resume with since={subscriber.last_seq}",
            )
        )

    async def _catch_up(self, connection: _Connection) -> None:
        """Read the log after ``last_seq`` at the pace the connection drains, until live."""
        if connection.catching_up:
            return
        connection.catching_up = True
        subscriber = connection.subscriber
        task_id = subscriber.task_id
        assert task_id is not None
        try:
            while subscriber.state == SubscriberState.REPLAYING:
                await subscriber.wait_for_room()
                if subscriber.state != SubscriberState.REPLAYING:
                    return
                limit = subscriber.delivery.read_limit()
                since = subscriber.last_seq
                cached = self.recent.after(task_id, since, limit)
                if cached is not None:
                    events, frames, sizes = cached
                else:
                    async with self.database.read() as session:
                        events = await EventLog(session).read(task_id, since=since, limit=limit)
                    frames = [encode(event) for event in events]
                    sizes = [frame_size(f) for f in frames]
                items: Sequence[Pending] = (
                    frames
                    if subscriber.formatter is None
                    else [(e, f) for e, f in zip(events, frames, strict=True)]
                )
                subscriber.replayed(items, [event.seq or 0 for event in events], sizes)
        except Exception:
            logger.exception("replay failed for %s", subscriber.client_id)
            await self.disconnect(subscriber.client_id, CloseCode.GOING_AWAY, "replay failed")
        finally:
            connection.catching_up = False

    async def _announce_gap(self, subscriber: Subscriber, since: int, first_seq: int) -> None:
        assert subscriber.task_id is not None
        async with self.database.read() as session:
            task: Task = await TaskStore(session).get(subscriber.task_id)
            state = await EventLog(session).state(subscriber.task_id)
        for event_type, data in (
            (E.GAP, {"since": since, "first_available_seq": first_seq}),
            (E.TASK_UPDATED, {"task": task.model_dump(mode="json"), "snapshot": True}),
            (E.STATE_SNAPSHOT, {"snapshot": state.document, "version": state.version}),
        ):
            self._queue(
                subscriber,
                _notice(
                    event_type, data, task_id=subscriber.task_id, client_id=subscriber.client_id
                ),
            )

    def _deliver_offline(self, subscriber: Subscriber) -> None:
        queued = self.offline.take(subscriber.client_id, now=time.monotonic())
        if queued.expired:
            self._queue(
                subscriber,
                _notice(
                    E.QUEUE_EXPIRED,
                    {
                        "message": "your queued personal messages expired while you were away",
                        "ttl_seconds": self.offline.ttl,
                    },
                    client_id=subscriber.client_id,
                ),
            )
        for frame in queued.frames:
            self._queue(subscriber, frame)
        if queued.dropped:
            self._queue(
                subscriber,
                _notice(
                    E.QUEUE_OVERFLOW,
                    {
                        "dropped": queued.dropped,
                        "kept": len(queued.frames),
                        "message": f"{queued.dropped} older personal messages were dropped "
                        f"while you were away (the queue keeps {self.offline.size})",
                    },
                    client_id=subscriber.client_id,
                ),
            )

    def _mark_dirty(self, client_id: str) -> None:
        """A direct-channel connection has frames to write (or can write again)."""
        self._dirty[client_id] = None
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            if self.flush_interval > 0:
                self._flush_handle = loop.call_later(self.flush_interval, self._flush)
            else:
                self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write every dirty direct-channel connection's pending frames.

        Connections with the same frames pending (the usual case: everyone up to date) get the
        same bytes, built once. A connection whose send buffer is full is skipped (and counts
        as blocked for the write watchdog); its channel marks it dirty again when the buffer
        drains, and its outbox keeps filling meanwhile, up to its bound.
        """
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        shared: dict[tuple[object, ...], bytes] = {}
        for client_id in dirty:
            connection = self._connections.get(client_id)
            if connection is not None:
                self._flush_connection(connection, shared)

    def _flush_connection(
        self, connection: _Connection, shared: dict[tuple[object, ...], bytes]
    ) -> None:
        channel = connection.channel
        subscriber = connection.subscriber
        if channel is None or not subscriber.delivery:
            return
        if not channel.writable:
            if not subscriber.blocked_since:
                subscriber.blocked_since = time.monotonic()
            return
        subscriber.blocked_since = 0.0
        frames: list[str] = subscriber.take()  # type: ignore[assignment]  # no formatter here
        key = (subscriber.batch, *frames)
        data = shared.get(key)
        if data is None:
            if subscriber.batch:
                data = text_frame(("[" + ",".join(frames) + "]").encode())
            else:
                data = b"".join([text_frame(frame.encode()) for frame in frames])
            shared[key] = data
        try:
            channel.write_frames(data)
        except Exception:
            logger.exception("writing to %s failed", subscriber.client_id)
            self._spawn(self.disconnect(subscriber.client_id, CloseCode.GOING_AWAY, "send failed"))
            return
        subscriber.messages_sent += len(frames)

    async def _write(self, connection: _Connection, sender: Sender) -> None:
        """Writer task of a connection without a direct channel: take, format, send."""
        subscriber = connection.subscriber
        try:
            while True:
                items = await subscriber.next_items()
                if not items:
                    return
                frames = [frame for frame in map(subscriber.render, items) if frame]
                texts = ["[" + ",".join(frames) + "]"] if subscriber.batch and frames else frames
                for text in texts:
                    subscriber.blocked_since = time.monotonic()
                    await sender(text)
                    subscriber.blocked_since = 0.0
                subscriber.messages_sent += len(items)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer went away mid-send: forget the connection (it may resume later).
            if subscriber.state != SubscriberState.CLOSED:
                self._spawn(
                    self.disconnect(subscriber.client_id, CloseCode.GOING_AWAY, "send failed")
                )

    async def _close_quietly(self, closer: Closer, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(closer(code, reason[:120]), timeout=self.close_timeout)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(min(self.heartbeat_interval, self.stale_after / 2))
            now = time.monotonic()
            self.offline.expire(now=now)
            for client_id, connection in list(self._connections.items()):
                subscriber = connection.subscriber
                if now - subscriber.last_seen > self.stale_after:
                    self.stats["stale_closed"] += 1
                    await self.disconnect(
                        client_id,
                        CloseCode.STALE,
                        f"no activity for {self.stale_after:g} s",
                    )
                    continue
                self._queue(
                    subscriber,
                    _notice(
                        E.HEARTBEAT,
                        {"server_time": datetime.now(UTC).isoformat()},
                        task_id=subscriber.task_id,
                        client_id=client_id,
                    ),
                )

    async def _write_watchdog(self) -> None:
        """Close connections that have taken no bytes for ``write_timeout`` while frames wait."""
        while True:
            await asyncio.sleep(self.write_timeout / 4)
            now = time.monotonic()
            for connection in list(self._connections.values()):
                subscriber = connection.subscriber
                since = subscriber.blocked_since
                if since and now - since > self.write_timeout:
                    self._cut(subscriber, f"no write progress for {self.write_timeout:g} s")

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
