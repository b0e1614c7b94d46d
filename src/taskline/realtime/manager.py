"""The ConnectionManager: who is subscribed to what, and getting each of them every event.

It is the I/O shell around the delivery core (:mod:`taskline.realtime.delivery`, which
decides who gets which seq), built from parts with one job each: the registry of
connections, the log heads connects look up, the flusher of direct channels, the catch-up
reader, the keepalive timers, the newest events kept in memory, the offline queues.

Delivery contract (design.md):
- Live events arrive from the bus as committed batches. Each is encoded once and offered to
  every subscriber of its task; a subscriber accepts only the next seq it expects, skips
  duplicates, and when it sees a jump it reads the missing events first.
- A subscriber is registered *before* its task's log head is read, so events committed during
  the connect and the replay are held (within its byte budget; past it they are read again)
  and released after it: no gap, no duplicate.
- Each connection has its own outbox, bounded in bytes (``outbox_bytes``). A subscriber that
  reads more slowly than events arrive is not cut off: past the bound it stops taking live
  events and catches up (from the newest events kept in memory, else the log) at the pace it
  drains, then rejoins live. Only a connection that takes nothing for ``write_timeout``
  seconds while frames wait (a reader that stopped) is closed, with 4008; it can resume with
  ``since``. Nobody else ever waits for it.
- Draining: a WebSocket that offers a direct channel is written by the flusher; any other
  connection has a writer task; code that follows a task (:meth:`follow`: SSE, AG-UI) pulls.
- Personal messages are not task events: they go to the client's own connection, or to its
  offline queue (``offline_queue_size`` per client, oldest dropped and counted) while away.
  With a client relay (Redis) the connection may be on another process and the queue is
  shared by all (:mod:`taskline.realtime.personal`).
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from taskline.bus.client_relay import ClientRelay
from taskline.domain.errors import InvalidInputError, NotFoundError, StorageError
from taskline.domain.events import (
    REQUEST_EVENTS,
    ConnectionInfo,
    WebSocketEventType,
    WebSocketMessage,
)
from taskline.domain.ids import new_id
from taskline.realtime.catch_up import CatchUp
from taskline.realtime.channel import DirectChannel, direct_channel
from taskline.realtime.close_codes import CloseCode
from taskline.realtime.delivery import Verdict
from taskline.realtime.flusher import Flusher
from taskline.realtime.follow import Following
from taskline.realtime.heads import LogHeads
from taskline.realtime.keepalive import Keepalive
from taskline.realtime.notices import encode, established, gap_notices, notice, offline_notices
from taskline.realtime.offline import OfflineQueues
from taskline.realtime.owners import ClientOwners
from taskline.realtime.personal import SharedClients, merged
from taskline.realtime.recent import RecentEvents
from taskline.realtime.registry import Closer, Connection, Registry
from taskline.realtime.resume import ResumeKind, plan_resume
from taskline.realtime.subscriber import Pending, Subscriber, SubscriberState, frame_size
from taskline.store.database import Database
from taskline.store.events import EventLog
from taskline.store.tasks import TaskStore

__all__ = ["BOARD_EVENTS", "ConnectionManager", "CursorVoidError", "Sender"]

logger = logging.getLogger("taskline.realtime")
E = WebSocketEventType

#: Task-level changes the board stream (/ws/board) carries, and the requests (the UI's
#: "Needs you" inbox follows them there).
BOARD_EVENTS = REQUEST_EVENTS | frozenset(
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

#: Writes one text frame to a connection (a WebSocket's ``send_text``).
Sender = Callable[[str], Awaitable[None]]


class CursorVoidError(InvalidInputError):
    """A ``since`` cursor that does not belong to this log (another epoch, or ahead of it)."""


class ConnectionManager:
    """Subscriptions, fan-out, replay, heartbeats, stale cleanup and offline queues.

    Args:
        database: where the event log is read from for replays and catch-ups.
        heartbeat_interval: seconds between server heartbeats to every connection.
        stale_after: a connection with no client frame for this long is closed (4408).
        write_timeout: a connection that takes no bytes for this long while frames wait for
            it (a reader that stopped) is closed (4008).
        flush_interval: seconds between writes to direct-channel connections (0: at the end of
            the current loop iteration). Frames committed meanwhile go out together: a
            ``batch`` subscriber gets them as one array frame, others as consecutive frames in
            one write.
        writer_grace: seconds a writer task may take to finish when its connection is closed.
        close_timeout: seconds a connection's close may take before it is given up.
        outbox_bytes: bytes of frames a connection may have waiting; past it, the subscriber
            catches up at its own pace instead of taking live events.
        offline_queue_size: personal messages kept per offline client (oldest dropped).
        offline_queue_ttl: seconds an offline client's queue is kept.
        recent_bytes: bytes of the newest events kept in memory (with their frames) over all
            tasks, so that catching up and resuming read them there instead of the log;
            ``recent_task_bytes`` per task.
        remember_heads: log heads remembered for connects (0: every connect reads its head;
            set it to 0 when the log is trimmed by retention, which no dispatch announces).
        client_relay: personal messages, offline queues and client-id owners shared with the
            other processes (see :mod:`taskline.realtime.personal`; None: this process's).
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
        remember_heads: int = 10_000,
        client_relay: ClientRelay | None = None,
    ) -> None:
        self.database = database
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self.write_timeout = write_timeout
        self.outbox_bytes = outbox_bytes
        self.writer_grace = writer_grace
        self.close_timeout = close_timeout
        self.registry = Registry()
        self.offline = OfflineQueues(size=offline_queue_size, ttl=offline_queue_ttl)
        self.owners = ClientOwners(ttl=offline_queue_ttl)
        self.shared = SharedClients(client_relay) if client_relay is not None else None
        self.recent = RecentEvents(task_bytes=recent_task_bytes, total_bytes=recent_bytes)
        self.heads = LogHeads(database, remember=remember_heads)
        self.flusher = Flusher(self._channel_of, self._write_failed, interval=flush_interval)
        self.catch_up = CatchUp(database, self.recent, self._replay_failed)
        self.keepalive = Keepalive(
            self.registry,
            heartbeat_interval=heartbeat_interval,
            stale_after=stale_after,
            write_timeout=write_timeout,
            beat=self._beat,
            stale=self._close_stale,
            stalled=lambda s: self._cut(s, f"no write progress for {write_timeout:g} s"),
            expire=self._expire,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._epoch: str | None = None
        self._epoch_lock = asyncio.Lock()
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
        """Read the log's epoch (if the database answers: else at the first connect) and start
        the heartbeat/stale-cleanup loop and the write watchdog."""
        try:
            await self.epoch()
        except StorageError as exc:
            logger.warning("the log's epoch could not be read yet: %s", exc)
        if self.shared is not None:
            await self.shared.start(self._deliver_here, lambda: list(self.registry.connections))
        self.keepalive.start()

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and stop background work."""
        await self.keepalive.stop()
        await asyncio.gather(
            *(
                self.disconnect(client_id, CloseCode.GOING_AWAY, "server shutting down")
                for client_id in list(self.registry.connections)
            ),
            return_exceptions=True,
        )
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.flusher.stop()
        if self.shared is not None:
            await self.shared.close()

    async def epoch(self) -> str:
        """This database's log epoch, read once (concurrent first callers share the read)."""
        if self._epoch is None:
            async with self._epoch_lock:
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
        sender: Sender | None,
        closer: Closer,
        task_id: str | None,
        client_id: str | None = None,
        *,
        since: int | None = None,
        epoch: str | None = None,
        batch: bool = False,
        user_agent: str | None = None,
        remote_address: str | None = None,
        channel: DirectChannel | None = None,
        owner: str = "anonymous",
    ) -> Subscriber | None:
        """Register a connection to a task (``task_id``) or to the board (``None``).

        Queues ``connection_established`` and the client's offline personal messages, then
        starts the replay from ``since`` (after a ``gap`` and snapshots if the log was trimmed
        past it), which runs in the background at the pace the connection drains; live events
        follow it with no gap and no duplicate. Without a ``channel`` a writer task sends the
        frames with ``sender`` (which may be None only when there is a channel). Returns None
        (after closing the connection with 4404 or 4409) for an unknown task or a void cursor,
        (after 1008) for a task id the database refuses to look up, and (after 4403) for a
        ``client_id`` that belongs to another ``owner`` (the text form of the actor that first
        connected with it: its queued messages are that actor's).
        """
        if client_id and not await self._may_use(client_id, owner):
            await self._close_quietly(
                closer,
                CloseCode.FORBIDDEN,
                "this client_id belongs to another principal; connect without one",
            )
            return None
        try:
            connection = await self._open(
                closer,
                task_id,
                client_id,
                since=since,
                epoch=epoch,
                batch=batch,
                user_agent=user_agent,
                remote_address=remote_address,
                channel=channel,
                sender=sender,
            )
        except NotFoundError:
            await self._close_quietly(
                closer, CloseCode.UNKNOWN_TASK, f"task {task_id!r} does not exist"
            )
            return None
        except CursorVoidError:
            return None  # told and closed (4409) by _open
        except InvalidInputError as exc:
            # what the database cannot even look up (a NUL in the task id, on PostgreSQL): no
            # reconnecting will help, as for a bad query (1008)
            await self._close_quietly(closer, CloseCode.POLICY_VIOLATION, exc.detail)
            return None
        return connection.subscriber

    async def _may_use(self, client_id: str, owner: str) -> bool:
        """Whether ``owner`` may connect with ``client_id``: Redis's answer (every process),
        this process's own when there is no Redis or it did not answer."""
        shared = await self.shared.claim_owner(client_id, owner) if self.shared else None
        if shared is False:
            return False  # another principal's, on some process: not recorded here either
        here = self.owners.claim(client_id, owner, now=time.monotonic())
        return here if shared is None else True

    @contextlib.asynccontextmanager
    async def follow(
        self,
        task_id: str,
        *,
        since: int | None = None,
        epoch: str | None = None,
        client_id: str | None = None,
        user_agent: str | None = None,
        remote_address: str | None = None,
    ) -> AsyncIterator[Following]:
        """Follow a task from code (see :mod:`taskline.realtime.follow`): its events after
        ``since`` (None: from now), replayed then live, at the pace the reader pulls.

        Raises:
            NotFoundError: no such task (nothing was sent).
            CursorVoidError: ``since``/``epoch`` do not belong to this log.
        """

        async def closed(code: int, reason: str) -> None:
            return None

        connection = await self._open(
            closed,
            task_id,
            client_id,
            since=since,
            epoch=epoch,
            user_agent=user_agent,
            remote_address=remote_address,
            pairs=True,
        )
        subscriber = connection.subscriber
        try:
            yield Following(subscriber)
        finally:
            await self.disconnect(
                subscriber.client_id, CloseCode.NORMAL, "stream ended", subscriber=subscriber
            )

    async def _open(
        self,
        closer: Closer,
        task_id: str | None,
        client_id: str | None,
        *,
        since: int | None,
        epoch: str | None,
        batch: bool = False,
        user_agent: str | None,
        remote_address: str | None,
        channel: DirectChannel | None = None,
        sender: Sender | None = None,
        pairs: bool = False,
    ) -> Connection:
        log_epoch = await self.epoch()
        client_id = client_id or new_id("client")
        if client_id in self.registry.connections:
            await self.disconnect(client_id, CloseCode.NORMAL, "replaced by a new connection")
        subscriber = Subscriber(
            client_id,
            task_id,
            max_bytes=self.outbox_bytes,
            batch=batch,
            user_agent=user_agent,
            remote_address=remote_address,
            pairs=pairs,
            flusher=self.flusher if channel is not None else None,
        )
        first_seq, last_seq = 1, 0
        if task_id is not None:
            # registered before the head is read: whatever commits from now on is offered
            self.registry.follow(subscriber)
            try:
                head = await self.heads.head(task_id, since=since)
            except BaseException:
                self.registry.unfollow(subscriber)
                raise
            first_seq, last_seq = head.first_seq, head.last_seq
        connection = Connection(subscriber, closer, channel)
        self.registry.add(connection)
        if channel is not None:
            channel.set_writable_callback(subscriber.ready)
        elif sender is not None:
            connection.writer = asyncio.create_task(self._write(connection, sender))
        self.stats["connections_opened"] += 1
        hello = established(
            client_id,
            task_id,
            epoch=log_epoch,
            first_seq=first_seq,
            last_seq=last_seq,
            heartbeat_interval=self.heartbeat_interval,
            stale_after=self.stale_after,
        )
        self._queue(subscriber, hello)
        queued = self.offline.take(client_id, now=time.monotonic())
        if self.shared is not None:
            queued = merged(queued, await self.shared.online(client_id))
        for item in offline_notices(
            client_id,
            queued,
            size=self.offline.size,
            ttl=self.offline.ttl,
        ):
            self._queue(subscriber, item)
        if channel is not None:  # the greeting goes out now, with the 101 (one write)
            self.flusher.write(subscriber, channel)
        if task_id is None:
            subscriber.delivery.begin_board()
            self.registry.follow(subscriber)
            return connection
        plan = plan_resume(
            since, first_seq=first_seq, last_seq=last_seq, client_epoch=epoch, log_epoch=log_epoch
        )
        if plan.kind == ResumeKind.VOID:
            message = (
                f"cursor since={since} epoch={epoch} does not belong to this log (epoch "
                f"{log_epoch}, last seq {last_seq}); reconnect without since, or with since=0 "
                "to replay everything"
            )
            self._queue(
                subscriber,
                notice(
                    E.ERROR,
                    {"code": "cursor_void", "message": message},
                    task_id=task_id,
                    client_id=client_id,
                ),
            )
            await self.disconnect(client_id, CloseCode.EPOCH_MISMATCH, "cursor is void")
            raise CursorVoidError(message, field="since")
        if plan.kind == ResumeKind.GAP:
            async with self.database.read() as session:
                task = await TaskStore(session).get(task_id)
                state = await EventLog(session).state(task_id)
            for item in gap_notices(
                client_id,
                task,
                state.document,
                state.version,
                since=since or 0,
                first_seq=plan.first_available,
            ):
                self._queue(subscriber, item)
        if subscriber.release(plan.replay_after, last_seq) == Verdict.READ_LOG:
            self._spawn(self.catch_up.run(connection))
        return connection

    async def disconnect(
        self,
        client_id: str,
        code: int = CloseCode.NORMAL,
        reason: str = "",
        *,
        subscriber: Subscriber | None = None,
    ) -> bool:
        """Forget a connection, close it with ``code`` and start its offline-queue clock.

        With ``subscriber``, only if that is still the client's connection (a connection
        replaced by a newer one with the same client id leaves the newer one alone).
        Returns False if the client was not connected. Never raises for an already-closed
        socket.
        """
        current = self.registry.get(client_id)
        if current is None or (subscriber is not None and current.subscriber is not subscriber):
            return False
        connection = self.registry.remove(client_id)
        if connection is None:
            return False
        subscriber = connection.subscriber
        subscriber.close_reason = reason
        now = time.monotonic()
        self.offline.went_offline(client_id, now=now)
        self.owners.seen(client_id, now=now)
        if self.shared is not None:
            await self.shared.offline(client_id)
        subscriber.close()
        if connection.channel is not None:
            # what is already queued (an error before a close, say) still goes out first
            self.flusher.forget(client_id)
            connection.channel.set_writable_callback(None)
            self.flusher.write(subscriber, connection.channel)
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

        Returns True if it went to a live connection (here, or on another process), False if
        it was queued (shared by every process; this one's own while Redis fails).
        """
        frame = encode(notice(E.PERSONAL_MESSAGE, message, client_id=client_id))
        if await self._deliver_here(client_id, frame):
            return True
        if self.shared is not None:
            sent = await self.shared.send(client_id, frame)
            if sent is not None:
                return sent
        self.offline.push(client_id, frame, now=time.monotonic())
        return False

    async def _deliver_here(self, client_id: str, frame: str) -> bool:
        """Queue ``frame`` on the client's connection to this process; False if none."""
        connection = self.registry.get(client_id)
        return connection is not None and self._queue(connection.subscriber, frame)

    async def queued(self, client_id: str) -> int:
        """Personal messages waiting for the client (this process's queue and the shared one)."""
        depth = self.offline.depth(client_id)
        if self.shared is not None:
            depth += await self.shared.depth(client_id)
        return depth

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
        subscribers = self.registry.subscribers_of(task_id)
        if not subscribers or not messages:
            return 0
        events = [m for m in messages if m.seq is not None]
        for message in (m for m in messages if m.seq is None):
            for subscriber in list(subscribers):
                self._queue(subscriber, message)
        if not events:
            return len(subscribers)
        frames = [encode(m) for m in events]
        sizes = [frame_size(f) for f in frames]
        seqs = [m.seq or 0 for m in events]
        self.recent.add(task_id, events, frames, sizes)
        pairs: list[Pending] | None = None
        chunk: str | None = None
        chunk_size = sum(sizes)
        first, last = seqs[0], seqs[-1]
        consecutive = last - first == len(events) - 1
        for subscriber in list(subscribers):
            items: Sequence[Pending]
            if subscriber.pairs:
                if pairs is None:
                    pairs = [(m, f) for m, f in zip(events, frames, strict=True)]
                items = pairs
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
        self.heads.committed(messages)
        by_task: dict[str, list[WebSocketMessage]] = defaultdict(list)
        for message in messages:
            if message.task_id:
                by_task[message.task_id].append(message)
        for task_id, batch in by_task.items():
            await self.broadcast_to_task(task_id, batch)
        board_subscribers = self.registry.board
        if board_subscribers:
            for message in (m for m in messages if m.event_type in BOARD_EVENTS):
                frame = encode(message)
                size = frame_size(frame)
                for subscriber in list(board_subscribers):
                    item = subscriber.pending(message, frame)
                    if subscriber.offer_board(item, size) == Verdict.BEHIND:
                        self._resync_board(subscriber)

    def resync_boards(self, message: str) -> int:
        """Tell every board subscriber to reload the task list (a ``gap`` notice with
        ``board: true`` and ``message``): board events may have been missed. Returns how many
        were told."""
        board = list(self.registry.board)
        for subscriber in board:
            self._resync_board(subscriber, message)
        return len(board)

    def touch(self, client_id: str) -> None:
        """Record client activity (any frame received)."""
        connection = self.registry.get(client_id)
        if connection is not None:
            connection.subscriber.last_seen = time.monotonic()

    def reply(self, client_id: str, event_type: WebSocketEventType, data: dict[str, Any]) -> None:
        """Queue a connection message (heartbeat reply, error) to one client."""
        connection = self.registry.get(client_id)
        if connection is not None:
            subscriber = connection.subscriber
            self._queue(
                subscriber,
                notice(event_type, data, task_id=subscriber.task_id, client_id=client_id),
            )

    # --- inspection -------------------------------------------------------------------------

    def get_task_connections(self, task_id: str) -> list[ConnectionInfo]:
        """The live connections subscribed to ``task_id``."""
        return [
            self._info(s)
            for s in self.registry.subscribers_of(task_id) or ()
            if s.client_id in self.registry.connections
        ]

    def get_connection_info(self, client_id: str) -> ConnectionInfo | None:
        connection = self.registry.get(client_id)
        return self._info(connection.subscriber) if connection else None

    def get_stats(self) -> dict[str, Any]:
        """Counts of connections, subscribers per task, queues and delivery counters."""
        subscribers = [c.subscriber for c in self.registry]
        return {
            "connections": len(self.registry),
            "board_connections": len(self.registry.board),
            "tasks": {task_id: len(subs) for task_id, subs in self.registry.by_task.items()},
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
            "log_heads": {"lookups": self.heads.lookups, "remembered": self.heads.hits},
            **self.stats,
        }

    def all_connections(self) -> list[ConnectionInfo]:
        return [self._info(c.subscriber) for c in self.registry]

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

    def _channel_of(self, client_id: str) -> tuple[Subscriber, DirectChannel] | None:
        connection = self.registry.get(client_id)
        if connection is None or connection.channel is None:
            return None
        return connection.subscriber, connection.channel

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

    def _beat(self, subscriber: Subscriber) -> None:
        data = {"server_time": datetime.now(UTC).isoformat()}
        self._queue(
            subscriber,
            notice(E.HEARTBEAT, data, task_id=subscriber.task_id, client_id=subscriber.client_id),
        )

    def _fell_behind(self, subscriber: Subscriber) -> None:
        """A live subscriber passed its bound or saw a jump: catch up."""
        connection = self.registry.get(subscriber.client_id)
        if connection is None or connection.subscriber is not subscriber:
            return
        self.stats["caught_up_from_log"] += 1
        self._spawn(self.catch_up.run(connection))

    def _resync_board(
        self,
        subscriber: Subscriber,
        message: str = "board events were dropped while this connection was behind; "
        "reload the task list",
    ) -> None:
        """A board subscriber missed events: tell it to reload the board."""
        self.stats["board_resyncs"] += 1
        self._queue(
            subscriber,
            notice(E.GAP, {"board": True, "message": message}, client_id=subscriber.client_id),
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

    def _expire(self, now: float) -> int:
        """Forget offline queues and client-id owners past their time."""
        self.owners.expire(now=now, connected=set(self.registry.connections))
        return self.offline.expire(now=now)

    async def _close_stale(self, subscriber: Subscriber) -> None:
        self.stats["stale_closed"] += 1
        await self.disconnect(
            subscriber.client_id, CloseCode.STALE, f"no activity for {self.stale_after:g} s"
        )

    def _write_failed(self, subscriber: Subscriber) -> None:
        self._spawn(self.disconnect(subscriber.client_id, CloseCode.GOING_AWAY, "send failed"))

    async def _replay_failed(self, connection: Connection) -> None:
        await self.disconnect(
            connection.subscriber.client_id, CloseCode.GOING_AWAY, "replay failed"
        )

    async def _write(self, connection: Connection, sender: Sender) -> None:
        """Writer task of a WebSocket without a direct channel: take, then send."""
        subscriber = connection.subscriber
        try:
            while True:
                items = await subscriber.next_items()
                if not items:
                    return
                frames: list[str] = items  # type: ignore[assignment]  # frames, no pairs
                texts = ["[" + ",".join(frames) + "]"] if subscriber.batch else frames
                for text in texts:
                    await sender(text)
                subscriber.messages_sent += len(frames)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The peer went away mid-send: forget the connection (it may resume later).
            if subscriber.state != SubscriberState.CLOSED:
                self._write_failed(subscriber)

    async def _close_quietly(self, closer: Closer, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.close_timeout):
                await closer(code, reason[:120])

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
