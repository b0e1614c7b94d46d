"""RedisNotifier: the :class:`~taskline.bus.notifier.Notifier` for several processes.

Every process subscribes to one Redis pub/sub channel. ``publish`` first calls this process's
callbacks directly (the local fast path), then publishes the batch to the channel, encoded once
with orjson as ``{"v": 1, "origin": ..., "messages": [envelope, ...]}``. A listener task
receives the batches of the *other* processes (those carrying this notifier's ``origin`` are
skipped: they were delivered locally already) and calls the callbacks with them, in the order
Redis delivered them.

Edges:

* Redis pub/sub is fire-and-forget. A batch published while this process is disconnected is
  never received here; subscribers fill such gaps from the log. If the subscription drops,
  the listener reconnects with exponential backoff (``reconnect_delay`` doubling up to
  ``max_reconnect_delay``, with jitter) until ``close``.
* Redis failures surface as :class:`~taskline.domain.errors.StorageError` chained ``from`` the
  driver's error: from ``start`` (cannot subscribe) and from ``publish`` (cannot publish; the
  local callbacks have run by then; a connection the pool kept from before an outage is
  tried once more on a fresh one). No ``redis`` exception leaves this module.
* Malformed payloads on the channel are logged and ignored.
"""

import asyncio
import logging
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from taskline.bus.notifier import BatchCallback, call_callbacks
from taskline.domain.errors import StorageError
from taskline.domain.events import WebSocketMessage

__all__ = ["RedisNotifier"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_POLL_INTERVAL = 1.0  # seconds between wake-ups of an idle listener (health checks run then)


class _State(StrEnum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    """Translate driver and socket errors into :class:`StorageError` (``from`` the original)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StorageError(f"Redis: could not {action}: {exc or type(exc).__name__}") from exc


def _redact(url: str) -> str:
    """``url`` without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


class RedisNotifier:
    """Announce committed batches to every process listening on one Redis channel.

    Args:
        url: Redis URL, for example ``redis://127.0.0.1:6379/0``.
        channel: pub/sub channel shared by all processes of one deployment.
        origin: identifier of this process, unique per deployment; batches carrying it are
            not delivered twice. It also names the Redis connections (``CLIENT LIST``).
        timeout: seconds allowed to connect and for each command (publish, subscribe).
        reconnect_delay: first wait after the subscription drops, in seconds.
        max_reconnect_delay: the longest wait between two reconnection attempts.

    Lifecycle: new → started (``start``) → closed (``close``). ``publish`` needs a started
    notifier; ``start`` twice raises ``RuntimeError``; ``close`` twice is harmless.
    """

    def __init__(
        self,
        url: str,
        *,
        channel: str = "taskline:events",
        origin: str,
        # timeouts
        timeout: float = 5.0,
        # reconnection
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        if not origin:
            raise ValueError("origin must be a non-empty string")
        if timeout <= 0 or reconnect_delay <= 0 or max_reconnect_delay < reconnect_delay:
            raise ValueError("timeouts must be positive and max_reconnect_delay >= reconnect_delay")
        self.url = url
        self.channel = channel
        self.origin = origin
        self._timeout = timeout
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._state = _State.NEW
        self._callbacks: list[BatchCallback] = []
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        #: How many times the subscription was re-established after a failure.
        self.reconnects = 0

    def __repr__(self) -> str:
        return (
            f"<RedisNotifier {self._state} url={_redact(self.url)!r} "
            f"channel={self.channel!r} origin={self.origin!r}>"
        )

    @property
    def connected(self) -> bool:
        """True while the listener holds a subscription; False from the moment it sees the
        link fail until it has subscribed again (``/health`` reports ``degraded`` then)."""
        return self._pubsub is not None

    def subscribe(self, callback: BatchCallback) -> None:
        """Call ``callback`` with every batch: this process's (directly) and others' (via Redis)."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Subscribe to the channel, then start the listener task.

        Returns once Redis has confirmed the subscription, so every batch published anywhere
        after ``start`` returns is received.

        Raises:
            StorageError: Redis cannot be reached; the notifier stays new and may be started again.
            RuntimeError: the notifier was already started or closed.
        """
        if self._state is not _State.NEW:
            raise RuntimeError(f"RedisNotifier: expected new, got {self._state}")
        client = Redis.from_url(
            self.url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            socket_keepalive=True,
            health_check_interval=30,
            client_name=f"taskline:{self.origin}",
        )
        self._client = client
        try:
            self._pubsub = await self._subscribe()
        except BaseException:
            self._client = None
            await client.aclose()
            raise
        self._state = _State.STARTED
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name=f"taskline-redis-listener:{self.origin}"
        )

    async def publish(self, messages: Sequence[WebSocketMessage]) -> None:
        """Call local callbacks with ``messages``, then publish them to the channel.

        An empty batch is ignored.

        Raises:
            StorageError: Redis refused or could not be reached (other processes did not hear
                of the batch; local callbacks did).
            RuntimeError: the notifier is not started.
        """
        if self._state is not _State.STARTED or self._client is None:
            raise RuntimeError(f"RedisNotifier: expected started, got {self._state}")
        if not messages:
            return
        batch = list(messages)
        payload = orjson.dumps(
            {
                "v": _FORMAT_VERSION,
                "origin": self.origin,
                "messages": [m.model_dump(mode="json") for m in batch],
            }
        )
        await call_callbacks(self._callbacks, batch)
        with _redis_errors(f"publish {len(batch)} event(s) to channel {self.channel!r}"):
            try:
                await self._client.publish(self.channel, payload)
            except RedisConnectionError:
                # a pooled connection broken by an outage that is over: the pool dropped it,
                # so one more try takes a fresh one (and fails at once if Redis is still down)
                await self._client.publish(self.channel, payload)

    async def close(self) -> None:
        """Stop the listener, then close the subscription and the connection pool.

        Batches arriving meanwhile are dropped. Closing twice is harmless.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.wait({listener})
        await self._drop_subscription()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- listener ---------------------------------------------------------------------------

    async def _subscribe(self) -> PubSub:
        """A new pub/sub connection subscribed to the channel, confirmed by Redis."""
        assert self._client is not None
        pubsub = self._client.pubsub()
        try:
            with _redis_errors(f"subscribe to channel {self.channel!r} at {_redact(self.url)}"):
                async with asyncio.timeout(self._timeout):
                    await pubsub.subscribe(self.channel)
                    while True:
                        reply = await pubsub.get_message(timeout=self._timeout)
                        if reply is not None and reply["type"] == "subscribe":
                            break
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            raise
        return pubsub

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            except (RedisError, OSError):
                logger.debug("error while closing a broken Redis subscription", exc_info=True)

    async def _listen(self) -> None:
        """Receive batches until cancelled; reconnect with backoff whenever the link fails."""
        delay = self._reconnect_delay
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe()
                    self.reconnects += 1
                    delay = self._reconnect_delay
                    logger.info("Redis channel %r: subscribed again", self.channel)
                reply = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=_POLL_INTERVAL
                )
            except (StorageError, RedisError, OSError) as exc:
                logger.warning(
                    "Redis channel %r: subscription lost (%s); retrying in %.1f s",
                    self.channel,
                    exc or type(exc).__name__,
                    delay,
                )
            except Exception:
                logger.exception(
                    "Redis channel %r: unexpected listener error; retrying in %.1f s",
                    self.channel,
                    delay,
                )
            else:
                if reply is not None and reply["type"] == "message":
                    await self._receive(reply["data"])
                continue
            await self._drop_subscription()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._max_reconnect_delay)

    async def _receive(self, raw: Any) -> None:
        """Decode one payload and hand it to the callbacks unless this process sent it."""
        try:
            payload = orjson.loads(raw)
            if payload["v"] != _FORMAT_VERSION:
                raise ValueError(f"unknown format version {payload['v']!r}")
            if payload["origin"] == self.origin:
                return
            batch = [WebSocketMessage.model_validate(item) for item in payload["messages"]]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            # orjson.JSONDecodeError is a ValueError; pydantic's ValidationError is one too.
            logger.warning("Redis channel %r: ignoring a malformed batch: %s", self.channel, exc)
            return
        if batch:
            await call_callbacks(self._callbacks, batch)
