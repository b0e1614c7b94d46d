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

import logging
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from taskline.bus.notifier import BatchCallback, call_callbacks
from taskline.bus.redis_subscription import Subscription, publish, redact, subscribe
from taskline.domain.events import WebSocketMessage

__all__ = ["RedisNotifier"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


class _State(StrEnum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


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
        self._subscription: Subscription | None = None
        self._reconnects_before = 0  # the count of the subscription ``close`` ended

    def __repr__(self) -> str:
        return (
            f"<RedisNotifier {self._state} url={redact(self.url)!r} "
            f"channel={self.channel!r} origin={self.origin!r}>"
        )

    @property
    def connected(self) -> bool:
        """True while the listener holds a subscription; False from the moment it sees the
        link fail until it has subscribed again (``/health`` reports ``degraded`` then)."""
        return self._subscription is not None and self._subscription.connected

    @property
    def reconnects(self) -> int:
        """How many times the subscription was re-established after a failure."""
        subscription = self._subscription
        return subscription.reconnects if subscription is not None else self._reconnects_before

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
        subscription = await subscribe(
            self.url,
            self.channel,
            self._receive,
            client_name=f"taskline:{self.origin}",
            listener_name=f"taskline-redis-listener:{self.origin}",
            timeout=self._timeout,
            reconnect_delay=self._reconnect_delay,
            max_reconnect_delay=self._max_reconnect_delay,
        )
        self._client, self._subscription = subscription.client, subscription
        self._state = _State.STARTED

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
        action = f"publish {len(batch)} event(s) to channel {self.channel!r}"
        await publish(self._client, self.channel, payload, action=action)

    async def close(self) -> None:
        """Stop the listener, then close the subscription and the connection pool.

        Batches arriving meanwhile are dropped. Closing twice is harmless.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            self._reconnects_before = subscription.reconnects
            await subscription.close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- listener ---------------------------------------------------------------------------

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
