"""The ConnectionManager: who is subscribed to what, and getting each of them every event.

Delivery contract (design.md):
- Live events arrive from the bus as committed batches. Each is encoded once and offered to
  every subscriber of its task; a subscriber accepts only the next seq it expects, skips
  duplicates, and when it sees a jump it reads the missing events from the log first.
- A subscriber joining with ``since`` is registered *before* the log is read, so events
  committed during the replay are held and released after it: no gap, no duplicate.
- Each connection has its own bounded outbox. A subscriber whose outbox overflows while live is
  closed with 4008 (it can resume with ``since``); nobody else waits for it.
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
from taskline.realtime.offline import OfflineQueues
from taskline.realtime.resume import ResumeKind, plan_resume
from taskline.realtime.subscriber import Formatter, Subscriber, SubscriberState
from taskline.store.database import Database
from taskline.store.events import EventLog
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

    __slots__ = ("channel", "closer", "subscriber", "writer")

    def __init__(
        self, subscriber: Subscriber, closer: Closer, channel: DirectChannel | None
    ) -> None:
        self.subscriber = subscriber
        self.closer = closer
        self.channel = channel
        self.writer: asyncio.Task[None] | None = None


class ConnectionManager:
    """Subscriptions, fan-out, replay, heartbeats, stale cleanup and offline queues.

    Args:
        database: where the event log is read from for replays and gap filling.
        heartbeat_interval: seconds between server heartbeats to every connection.
        stale_after: a connection with no client frame for this long is closed (4408).
        outbox_size: frames a connection may have waiting before it is cut off (4008).
        offline_queue_size: personal messages kept per offline client (oldest dropped).
        offline_queue_ttl: seconds an offline client's queue is kept.
        replay_chunk: events read from the log per query during a replay.
        flush_interval: seconds between writes to direct-channel connections (0: at the end of
            the current loop iteration). Frames committed meanwhile go out together: a
            ``batch`` subscriber gets them as one array frame, others as consecutive frames in
            one write.
    """

    def __init__(
        self,
        database: Database,
        *,
        # timing
        heartbeat_interval: float = 20.0,
        stale_after: float = 300.0,
        # limits
        outbox_size: int = 1024,
        offline_queue_size: int = 100,
        offline_queue_ttl: float = 86_400.0,
        replay_chunk: int = 1000,
        flush_interval: float = 0.01,
    ) -> None:
        self.database = database
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.outbox_size = outbox_size
        self.replay_chunk = replay_chunk
        self.flush_interval = flush_interval
        self._dirty: dict[str, None] = {}  # client ids with frames to flush, in order
        self._flush_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self.offline = OfflineQueues(size=offline_queue_size, ttl=offline_queue_ttl)
        self._connections: dict[str, _Connection] = {}
        self._by_task: dict[str, set[Subscriber]] = defaultdict(set)
        self._board: set[Subscriber] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._epoch: str | None = None
        self.started_at = time.time()
        self.stats = {"connections_opened": 0, "slow_consumers_closed": 0, "stale_closed": 0}

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the heartbeat and stale-cleanup loop."""
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="taskline-heartbeat")

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and stop background work."""
        if self._heartbeat:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
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

        Sends ``connection_established``, replays from ``since`` (or a ``gap`` and snapshots if
        trimmed), delivers queued personal messages, then the subscriber is live. Returns None
        (after closing the connection) for an unknown task or a void cursor.
        """
        log_epoch = await self.epoch()
        if task_id is not None:
            try:
                async with self.database.read() as session:
                    if not await TaskStore(session).exists(task_id):
                        raise NotFoundError("task", task_id)
                    head = await EventLog(session).head(task_id)
            except NotFoundError:
                await closer(CloseCode.UNKNOWN_TASK, f"task {task_id!r} does not exist")
                return None
        client_id = client_id or new_id("client")
        if client_id in self._connections:
            await self.disconnect(client_id, CloseCode.NORMAL, "replaced by a new connection")
        if formatter is not None:
            channel = None  # formatted frames (SSE) are not WebSocket text frames
        ready = partial(self._mark_dirty, client_id) if channel is not None else None
        subscriber = Subscriber(
            client_id,
            task_id,
            outbox_size=self.outbox_size,
            batch=batch,
            user_agent=user_agent,
            remote_address=remote_address,
            formatter=formatter,
            on_ready=ready,
        )
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
            subscriber.move_to(SubscriberState.REPLAYING)
            subscriber.move_to(SubscriberState.LIVE)
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
        subscriber.last_seq = plan.replay_after
        subscriber.move_to(SubscriberState.REPLAYING)
        self._by_task[task_id].add(subscriber)
        if plan.kind == ResumeKind.GAP:
            await self._announce_gap(subscriber, since or 0, plan.first_available)
        if plan.kind == ResumeKind.LIVE:
            self._release_pending(subscriber)
        else:
            await self._catch_up(subscriber)
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
        if subscriber.state != SubscriberState.CLOSED:
            subscriber.move_to(SubscriberState.CLOSED)
        subscriber.close_reason = reason
        if subscriber.task_id is not None:
            subscribers = self._by_task.get(subscriber.task_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._by_task[subscriber.task_id]
        self._board.discard(subscriber)
        self.offline.went_offline(client_id, now=time.monotonic())
        subscriber.outbox.close()
        if connection.channel is not None:
            # what is already queued (an error before a close, say) still goes out first
            self._dirty.pop(client_id, None)
            connection.channel.set_writable_callback(None)
            self._flush_connection(connection, {})
        writer = connection.writer
        if writer is not None and writer is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout=1.0)
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
        frames = [encode(m) for m in messages]
        chunk: str | None = None
        first, last = messages[0].seq, messages[-1].seq
        consecutive = first is not None and last is not None and last - first == len(messages) - 1
        for subscriber in list(subscribers):
            if consecutive and subscriber.batch and subscriber.formatter is None:
                chunk = chunk if chunk is not None else ",".join(frames)
                taken = subscriber.offer_chunk(first or 0, last or 0, chunk)
                if taken is True:
                    continue
                if taken is False:
                    self._cut_slow(subscriber)
                    continue
            self._offer(subscriber, messages, frames)
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
                for subscriber in list(self._board):
                    if not subscriber.outbox.put(self._framed(subscriber, message, frame)):
                        self._cut_slow(subscriber)

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
        return [self._info(s) for s in self._by_task.get(task_id, ())]

    def get_connection_info(self, client_id: str) -> ConnectionInfo | None:
        connection = self._connections.get(client_id)
        return self._info(connection.subscriber) if connection else None

    def get_stats(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "board_connections": len(self._board),
            "tasks": {task_id: len(subs) for task_id, subs in self._by_task.items()},
            "offline_queues": self.offline.stats(),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            **self.stats,
        }

    def all_connections(self) -> list[ConnectionInfo]:
        return [self._info(c.subscriber) for c in self._connections.values()]

    # --- internals --------------------------------------------------------------------------

    def _info(self, subscriber: Subscriber) -> ConnectionInfo:
        idle = time.monotonic() - subscriber.last_seen
        return ConnectionInfo(
            client_id=subscriber.client_id,
            task_id=subscriber.task_id,
            connected_at=datetime.fromtimestamp(subscriber.connected_at, UTC),
            last_seen=datetime.fromtimestamp(time.time() - idle, UTC),
            user_agent=subscriber.user_agent,
            remote_address=subscriber.remote_address,
            messages_sent=subscriber.messages_sent,
            outbox_depth=len(subscriber.outbox),
        )

    def _framed(self, subscriber: Subscriber, message: WebSocketMessage | None, frame: str) -> str:
        formatter = subscriber.formatter
        return formatter(message, frame) if formatter else frame

    def _queue(self, subscriber: Subscriber, item: WebSocketMessage | str) -> bool:
        """Queue a connection message (or an already encoded frame) outside the seq order."""
        if isinstance(item, str):
            frame = self._framed(subscriber, None, item)
        else:
            frame = self._framed(subscriber, item, encode(item))
        if not subscriber.outbox.put(frame):
            self._cut_slow(subscriber)
            return False
        return True

    def _offer(
        self,
        subscriber: Subscriber,
        messages: Sequence[WebSocketMessage],
        frames: Sequence[str],
    ) -> None:
        if subscriber.formatter is not None:
            frames = [self._framed(subscriber, m, f) for m, f in zip(messages, frames, strict=True)]
        outcome = subscriber.offer(messages, frames)
        if outcome is False:
            self._cut_slow(subscriber)
        elif outcome is None:
            subscriber.move_to(SubscriberState.REPLAYING)
            subscriber.pending.extend(messages)
            self._spawn(self._catch_up(subscriber))

    def _cut_slow(self, subscriber: Subscriber) -> None:
        if subscriber.state == SubscriberState.CLOSED:
            return
        self.stats["slow_consumers_closed"] += 1
        logger.warning("closing slow consumer %s (outbox full)", subscriber.client_id)
        self._spawn(
            self.disconnect(
                subscriber.client_id,
                CloseCode.SLOW_CONSUMER,
                f"outbox overflow ({self.outbox_size} frames); resume with since="
                f"{subscriber.last_seq}",
            )
        )

    async def _catch_up(self, subscriber: Subscriber) -> None:
        """Read the log after ``subscriber.last_seq`` until caught up, then go live."""
        assert subscriber.task_id is not None
        try:
            while subscriber.state == SubscriberState.REPLAYING:
                async with self.database.read() as session:
                    events = await EventLog(session).read(
                        subscriber.task_id, since=subscriber.last_seq, limit=self.replay_chunk
                    )
                for event in events:
                    await subscriber.outbox.wait_for_room()
                    if subscriber.outbox.closed:
                        return
                    frame = self._framed(subscriber, event, encode(event))
                    if not subscriber.queue(frame, event.seq):
                        self._cut_slow(subscriber)
                        return
                if len(events) < self.replay_chunk and self._release_pending(subscriber):
                    return
        except Exception:
            logger.exception("replay failed for %s", subscriber.client_id)
            await self.disconnect(subscriber.client_id, CloseCode.GOING_AWAY, "replay failed")

    def _release_pending(self, subscriber: Subscriber) -> bool:
        """Queue held live events that follow on; go live if nothing is missing.

        Runs without awaiting, so no event can slip in between the check and going live.
        """
        pending = sorted(
            (m for m in subscriber.pending if m.seq is None or m.seq > subscriber.last_seq),
            key=lambda m: m.seq or 0,
        )
        for message in pending:
            if message.seq is not None and message.seq > subscriber.last_seq + 1:
                subscriber.pending = [m for m in pending if (m.seq or 0) > subscriber.last_seq]
                return False  # still a hole: read the log again
            frame = self._framed(subscriber, message, encode(message))
            if not subscriber.queue(frame, message.seq):
                self._cut_slow(subscriber)
                return True
        subscriber.pending = []
        if subscriber.state == SubscriberState.REPLAYING:
            subscriber.move_to(SubscriberState.LIVE)
        return True

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
        same bytes, built once. A connection whose send buffer is full is skipped; its channel
        marks it dirty again when the buffer drains, and its outbox keeps filling meanwhile.
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
        if channel is None or not subscriber.outbox or not channel.writable:
            return
        frames = subscriber.outbox.drain()
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
        subscriber = connection.subscriber
        try:
            while True:
                frames = await subscriber.outbox.take(batch=subscriber.batch)
                if not frames:
                    return
                text = "[" + ",".join(frames) + "]" if subscriber.batch else frames[0]
                await sender(text)
                subscriber.messages_sent += len(frames)
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
            await asyncio.wait_for(closer(code, reason[:120]), timeout=5.0)

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

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
