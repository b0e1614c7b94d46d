"""An agent's one live connection (``WS /ws/agents/{agent_id}``): delivery and commands.

See ``docs/agent-protocol.md`` for the frames. This module is the I/O around the
:class:`~taskline.sdk._outbox.Outbox` ledger: a supervisor task connects (and reconnects
with backoff), re-sends what is unacknowledged, then runs a writer (batches and heartbeats)
and a reader (acks, nacks, commands, requests' outcomes) until the connection drops.

Lifecycle (:class:`LinkState`): ``new → connecting → open ⇄ reconnecting → closed``, or
``failed`` when retrying cannot help (another connection took over the agent, the server
refused the agent id or the token: close 4401 or 4403, ``give_up_after`` ran out). A closed
or failed connection does not reopen.
"""

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from taskline.sdk._config import CLIENT_DEFAULT, ClientDefault, DeliveryOptions
from taskline.sdk._errors import (
    ClientClosedError,
    ConnectionReplacedError,
    DeliveryTimeoutError,
    EventRejected,
    ServerUnreachableError,
    TasklineClientError,
)
from taskline.sdk._events import BuiltEvent
from taskline.sdk._models import Command
from taskline.sdk._outbox import Outbox
from taskline.sdk._wire import (
    Dropped,
    decode,
    fatal_close,
    open_socket,
    token_sent,
    websocket_url,
)

__all__ = ["AgentLink", "CommandHandler", "LinkState"]

logger = logging.getLogger("taskline.sdk")

CommandHandler = Callable[[Command], None]

_REPLACED = 4000
_HEARTBEAT = '{"type":"heartbeat"}'
#: Commands kept for tasks no run has claimed yet (a run claims them when it starts).
_UNCLAIMED_LIMIT = 100
#: Outcomes of requests kept for a wait that starts after the outcome arrived.
_OUTCOMES_KEPT = 100


class LinkState(StrEnum):
    NEW = "new"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"
    FAILED = "failed"


class AgentSocket(Protocol):
    """What an agent connection needs of its socket: a WebSocket client connection's
    interface (``websockets``), which an in-process connection can offer too. ``recv``, ``send``
    and iteration raise ``websockets.exceptions.ConnectionClosed`` once it is closed."""

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


#: Opens one connection of agent ``agent_id`` (name and kind for an agent to register):
#: how an agent reaches a server without the network (the server's own built-in agent).
AgentConnector = Callable[[str, str | None, str | None], Awaitable[AgentSocket]]


class AgentLink:
    """The connection of one agent, shared by every run of that agent in one client.

    Events are handed over with :meth:`publish` and acknowledged in the background;
    :meth:`flush` waits for the acknowledgements. Commands are routed by task to the handler
    that :meth:`claim`-ed the task.

    Args:
        base_url: the server's HTTP base URL.
        agent_id: ``agent_…``; an unknown id is registered by the server on connect.
        headers: sent with the upgrade request (``Authorization: Bearer <token>``).
        name, kind: used by the server when it registers an unknown agent.
        options: buffering, batching, timeouts and backoff.
        connector: opens each connection instead of a WebSocket to ``base_url`` (see
            :data:`AgentConnector`); None: the network.
    """

    def __init__(
        self,
        base_url: str,
        agent_id: str,
        *,
        headers: Mapping[str, str],
        name: str | None = None,
        kind: str | None = None,
        options: DeliveryOptions,
        connector: AgentConnector | None = None,
    ) -> None:
        self.agent_id = agent_id
        self._name = name
        self._kind = kind
        self._connector = connector
        self.base_url = base_url
        self.url = websocket_url(base_url, f"/ws/agents/{agent_id}", {"name": name, "kind": kind})
        self.options = options
        self.state = LinkState.NEW
        self.connections = 0  #: connections opened so far (reconnects = connections - 1)
        self.resent_batches = 0  #: batches sent again after a lost connection
        self._headers = dict(headers)
        self._outbox = Outbox(
            batch_size=options.batch_size, max_batch_bytes=options.max_batch_bytes
        )
        self._changed = asyncio.Condition()  # notified on acks, nacks and failure
        self._wake = asyncio.Event()  # the writer has something to look at
        self._fatal: TasklineClientError | None = None
        self._rejected: dict[str, list[EventRejected]] = {}
        self._handlers: dict[str, CommandHandler] = {}
        self._unclaimed_listeners: list[CommandHandler] = []
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._unclaimed: deque[Command] = deque(maxlen=_UNCLAIMED_LIMIT)
        self._outcome_waits: dict[str, set[asyncio.Future[dict[str, Any]]]] = {}
        self._outcomes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._heartbeat_interval = options.heartbeat_interval
        self._supervisor: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # the first connection attempt has an outcome

    def __repr__(self) -> str:
        return (
            f"<AgentLink {self.agent_id} {self.state.value} pending={self._outbox.pending} "
            f"connections={self.connections}>"
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; returns at once (events may be published
        before the connection is up: they wait in the buffer)."""
        if self.state is not LinkState.NEW:
            raise RuntimeError(f"expected a new link, got {self.state.value}")
        self.state = LinkState.CONNECTING
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"taskline-agent-{self.agent_id}"
        )

    async def close(self, *, flush: bool = True) -> None:
        """Wait for every event to be acknowledged (``flush``), then close the connection.

        The connection closes even when the flush fails; the flush's error is raised after.
        Calling it again does nothing.

        Raises:
            DeliveryTimeoutError, EventRejected, ConnectionReplacedError, ...: see :meth:`flush`.
        """
        if self.state in {LinkState.CLOSED, LinkState.FAILED} and self._supervisor is None:
            return
        error: BaseException | None = None
        if flush and self.state is not LinkState.FAILED:
            try:
                await self.flush()
            except TasklineClientError as exc:
                error = exc
        supervisor, self._supervisor = self._supervisor, None
        if self.state is not LinkState.FAILED:
            self.state = LinkState.CLOSED
        self._attempted.set()
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        async with self._changed:
            self._changed.notify_all()
        if error is not None:
            raise error

    async def first_attempt(self) -> None:
        """Wait for the outcome of the first connection attempt (at once after it).

        Returns when the agent is connected, or when the attempt failed in a way a reconnect
        may fix (the link keeps retrying in the background); bounded by the connect timeout
        (the handshake, then the ``welcome``) when the server does not answer.

        Raises:
            TasklineAuthError, ConnectionReplacedError, InvalidRequest, ...: the connection
                failed for good (a refused token: close 4401 or 4403).
        """
        await self._attempted.wait()
        if self._fatal is not None:
            raise self._fatal

    @property
    def error(self) -> TasklineClientError | None:
        """The error that ended the connection for good (state ``failed``), else None."""
        return self._fatal

    @property
    def pending(self) -> int:
        """Events handed over and not yet acknowledged or refused."""
        return self._outbox.pending

    @property
    def connected(self) -> bool:
        return self.state is LinkState.OPEN

    # --- publishing ---------------------------------------------------------------------------

    async def publish(self, task_id: str, event: BuiltEvent) -> None:
        """Queue ``event`` for ``task_id``; wait for room while the buffer is full.

        Raises:
            DeliveryTimeoutError: the buffer stayed full for ``flush_timeout`` seconds.
            ConnectionReplacedError, ServerUnreachableError, ...: the connection failed for
                good; nothing more can be sent.
        """
        self._check_usable()
        if self._outbox.pending >= self.options.buffer_size:
            await self._wait_for(
                lambda: self._outbox.pending < self.options.buffer_size,
                self.options.flush_timeout,
            )
        self._outbox.add(task_id, event.event_id, event.text, now=time.monotonic())
        self._wake.set()

    async def flush(
        self, task_id: str | None = None, *, timeout: float | ClientDefault | None = CLIENT_DEFAULT
    ) -> None:
        """Wait until every event published so far is acknowledged or refused.

        ``timeout`` defaults to ``flush_timeout``; ``None`` waits as long as it takes.

        Then raise the first refusal not yet reported for ``task_id`` (any task when None),
        as :class:`EventRejected`; later refusals follow on later flushes.

        Raises:
            EventRejected: the server refused a batch (nothing of it was stored).
            DeliveryTimeoutError: events were still unacknowledged after ``flush_timeout``
                (they stay buffered and are still sent if the connection returns).
            ConnectionReplacedError, ServerUnreachableError, ...: the connection failed for
                good.
        """
        if self.state is not LinkState.CLOSED:
            target = self._outbox.request_flush()
            self._wake.set()
            limit = self.options.flush_timeout if timeout is CLIENT_DEFAULT else timeout
            await self._wait_for(lambda: self._outbox.resolved_through(target), limit)
        self._raise_rejected(task_id)

    def _raise_rejected(self, task_id: str | None) -> None:
        keys = [task_id] if task_id is not None else list(self._rejected)
        for key in keys:
            errors = self._rejected.get(key)
            if errors:
                error = errors.pop(0)
                if not errors:
                    del self._rejected[key]
                raise error

    async def _wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> None:
        """Wait until ``predicate()`` (re-checked on every ack, nack and failure), at most
        ``timeout`` seconds; raise the connection's fatal error if it failed meanwhile."""

        def done() -> bool:
            return predicate() or self._fatal is not None or self.state is LinkState.CLOSED

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            raise DeliveryTimeoutError(
                self.base_url, self._outbox.pending, timeout or 0.0
            ) from None
        if not predicate():
            self._check_usable()
            raise DeliveryTimeoutError(self.base_url, self._outbox.pending, 0.0)

    def _check_usable(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self.state is LinkState.CLOSED:
            raise ClientClosedError(f"the connection of agent {self.agent_id!r} is closed")

    # --- commands -----------------------------------------------------------------------------

    def claim(self, task_id: str, handler: CommandHandler) -> list[Command]:
        """Route commands for ``task_id`` to ``handler`` from now on; return the commands
        for that task that arrived before (oldest first), which the caller handles itself."""
        self._handlers[task_id] = handler
        earlier = [c for c in self._unclaimed if c.task_id == task_id]
        if earlier:
            self._unclaimed = deque(
                (c for c in self._unclaimed if c.task_id != task_id), maxlen=_UNCLAIMED_LIMIT
            )
        return earlier

    def release(self, task_id: str, handler: CommandHandler) -> None:
        """Stop routing commands for ``task_id`` to ``handler`` (later ones wait unclaimed)."""
        if self._handlers.get(task_id) == handler:  # ==: bound methods are new objects
            del self._handlers[task_id]

    @property
    def claimed_tasks(self) -> int:
        """How many tasks have a command handler (the agent's runs in progress)."""
        return len(self._handlers)

    def add_reconnect_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` after every reconnection (not the first connection), once the
        server has welcomed the agent and before new events are sent."""
        self._reconnect_hooks.append(hook)

    def remove_reconnect_hook(self, hook: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._reconnect_hooks.remove(hook)

    def add_unclaimed_listener(self, listener: CommandHandler) -> None:
        """Also show ``listener`` every command for a task no run has claimed (the command
        still waits for a run of that task, which gets its messages)."""
        self._unclaimed_listeners.append(listener)

    def remove_unclaimed_listener(self, listener: CommandHandler) -> None:
        with contextlib.suppress(ValueError):
            self._unclaimed_listeners.remove(listener)

    def _dispatch(self, command: Command) -> None:
        handler = self._handlers.get(command.task_id)
        if handler is None:
            self._unclaimed.append(command)
            for listener in list(self._unclaimed_listeners):
                try:
                    listener(command)
                except Exception:
                    logger.exception("agent %s: a command listener failed", self.agent_id)
            return
        try:
            handler(command)
        except Exception:
            logger.exception("command handler for task %s failed", command.task_id)

    # --- requests' outcomes --------------------------------------------------------------------

    def expect_outcome(self, request_id: str) -> "asyncio.Future[dict[str, Any]]":
        """A future that gets the request (as JSON) once the hub sends its outcome (a
        ``request`` frame: answered, approved, rejected, expired or cancelled); done at once
        when it arrived already. It never fails: the caller also reads the request back,
        since the frame is not sent to an agent that was away. :meth:`forget_outcome` it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        seen = self._outcomes.get(request_id)
        if seen is not None:
            future.set_result(seen)
        else:
            self._outcome_waits.setdefault(request_id, set()).add(future)
        return future

    def forget_outcome(self, request_id: str, future: "asyncio.Future[dict[str, Any]]") -> None:
        """Stop waiting with ``future`` (from :meth:`expect_outcome`)."""
        future.cancel()
        waits = self._outcome_waits.get(request_id)
        if waits is not None:
            waits.discard(future)
            if not waits:
                del self._outcome_waits[request_id]

    def _outcome(self, request: dict[str, Any]) -> None:
        request_id = request["id"]
        self._outcomes[request_id] = request
        self._outcomes.move_to_end(request_id)
        while len(self._outcomes) > _OUTCOMES_KEPT:
            self._outcomes.popitem(last=False)
        for future in self._outcome_waits.pop(request_id, ()):
            if not future.done():
                future.set_result(request)

    # --- the connection -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        delays = self.options.backoff.delays()
        down_since = time.monotonic()
        while True:
            try:
                websocket = await self._open()
            except Dropped as exc:
                logger.debug("agent %s: %s", self.agent_id, exc.reason)
            except TasklineClientError as exc:
                await self._fail(exc)
                return
            else:
                welcomed = self.connections
                try:
                    await self._serve(websocket)
                except Dropped as exc:
                    logger.info("agent %s: connection lost (%s); reconnecting", self.agent_id, exc)
                    if self.connections > welcomed:  # it had worked: start backing off anew
                        delays = self.options.backoff.delays()
                        down_since = time.monotonic()
                except TasklineClientError as exc:
                    await self._fail(exc)
                    return
                finally:
                    self._outbox.connection_lost()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(websocket.close(), self.options.close_timeout)
            self.state = LinkState.RECONNECTING
            self._attempted.set()
            give_up = self.options.backoff.give_up_after
            if give_up is not None and time.monotonic() - down_since > give_up:
                await self._fail(
                    ServerUnreachableError(
                        self.base_url, f"no connection for {give_up:g} s", timed_out=True
                    )
                )
                return
            await asyncio.sleep(next(delays))

    async def _open(self) -> AgentSocket:
        if self._connector is not None:
            return await self._connector(self.agent_id, self._name, self._kind)
        return await open_socket(
            self.url,
            headers=self._headers,
            open_timeout=self.options.connect_timeout,
            close_timeout=self.options.close_timeout,
        )

    async def _serve(self, websocket: AgentSocket) -> None:
        """Run one connection until it drops (:class:`Dropped`) or fails for good."""
        await self._welcome(websocket)
        self.connections += 1
        self.resent_batches += len(self._outbox.batches)  # all unsent again after a loss
        self.state = LinkState.OPEN
        self._attempted.set()
        if self.connections > 1:
            for hook in list(self._reconnect_hooks):
                try:
                    hook()
                except Exception:
                    logger.exception("agent %s: a reconnect hook failed", self.agent_id)
        self._wake.set()
        reader = asyncio.create_task(self._read(websocket))
        writer = asyncio.create_task(self._write(websocket))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for task in done:
            task.result()  # raises Dropped or the fatal error
        raise Dropped("connection ended")

    async def _welcome(self, websocket: AgentSocket) -> None:
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                while True:
                    frame = decode(await websocket.recv())
                    if isinstance(frame, dict) and frame.get("type") == "welcome":
                        break
        except TimeoutError:
            raise Dropped("no welcome from the server in time") from None
        except ConnectionClosed as exc:
            raise self._closed(websocket) from exc
        except ValueError:
            raise Dropped("the server's first frame is not JSON") from None
        interval = frame.get("heartbeat_interval")
        if isinstance(interval, int | float) and interval > 0:
            self._heartbeat_interval = min(self.options.heartbeat_interval, float(interval))

    def _closed(self, websocket: AgentSocket) -> Exception:
        code, reason = websocket.close_code, websocket.close_reason or ""
        if code == _REPLACED:
            return ConnectionReplacedError(self.agent_id)
        fatal = fatal_close(
            code, reason, f"agent {self.agent_id!r}", sent_token=token_sent(self._headers)
        )
        if fatal is not None:
            return fatal
        return Dropped(f"closed by the server ({code} {reason})".rstrip(), code)

    async def _write(self, websocket: AgentSocket) -> None:
        outbox = self._outbox
        options = self.options
        last_sent = time.monotonic()
        try:
            while True:
                self._wake.clear()  # before looking: a wake-up from now on is not missed
                now = time.monotonic()
                delay = outbox.send_delay(
                    now, linger=options.linger, max_in_flight=options.max_in_flight
                )
                if delay == 0:
                    batch = outbox.next_batch()
                    if batch is not None:
                        await websocket.send(batch.frame())
                        last_sent = time.monotonic()
                        continue
                heartbeat_in = last_sent + self._heartbeat_interval - now
                if heartbeat_in <= 0:
                    await websocket.send(_HEARTBEAT)
                    last_sent = time.monotonic()
                    continue
                wait = heartbeat_in if delay is None else min(delay, heartbeat_in)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
        except ConnectionClosed as exc:
            raise self._closed(websocket) from exc

    async def _read(self, websocket: AgentSocket) -> None:
        try:
            async for text in websocket:
                try:
                    frame = decode(text)
                except ValueError:
                    logger.warning(
                        "agent %s: a frame that is not JSON: %.200r", self.agent_id, text
                    )
                    continue
                if isinstance(frame, dict):
                    await self._handle(frame)
        except ConnectionClosed as exc:
            raise self._closed(websocket) from exc
        raise self._closed(websocket)

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ack":
            batch = self._outbox.acknowledge(str(frame.get("batch_id")), _ints(frame.get("seqs")))
            if batch is not None:
                await self._notify()
        elif kind == "nack":
            batch = self._outbox.refuse(str(frame.get("batch_id")))
            if batch is not None:
                error = frame.get("error")
                problem: dict[str, Any] = dict(error) if isinstance(error, dict) else {}
                problem.setdefault("status", frame.get("status") or 422)
                problem.setdefault("detail", "the server refused the batch")
                rejected = EventRejected(
                    problem,
                    task_id=batch.task_id,
                    batch_id=batch.batch_id,
                    event_ids=batch.event_ids,
                )
                self._rejected.setdefault(batch.task_id, []).append(rejected)
                await self._notify()
        elif kind == "command":
            self._dispatch(Command.from_wire(frame))
        elif kind == "request":
            request = frame.get("request")
            if isinstance(request, dict) and isinstance(request.get("id"), str):
                self._outcome(request)
        elif kind == "error":
            logger.warning("agent %s: the server reports %s", self.agent_id, frame)

    async def _notify(self) -> None:
        self._wake.set()
        async with self._changed:
            self._changed.notify_all()

    async def _fail(self, error: TasklineClientError) -> None:
        self._fatal = error
        self.state = LinkState.FAILED
        self._attempted.set()
        logger.error("agent %s: %s", self.agent_id, error)
        async with self._changed:
            self._changed.notify_all()


def _ints(values: Any) -> list[int]:
    if not isinstance(values, list):
        return []
    return [v if isinstance(v, int) else 0 for v in values]
