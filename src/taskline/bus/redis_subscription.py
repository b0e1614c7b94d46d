"""What the Redis parts of the bus share: one pub/sub subscription kept alive, the client they
build, publishing with one retry, how Redis errors and URLs are reported, and reading replies
as text.

:class:`Subscription` subscribes to one channel (returning once Redis confirmed it), then a
listener task hands every message's data to a callback. When the link fails it drops the
subscription (``connected`` is False from then on), waits ``reconnect_delay`` (doubling up to
``max_reconnect_delay``, with jitter) and subscribes again, until ``close``. Messages published
meanwhile never arrive (pub/sub is fire-and-forget); ``reconnects`` counts the gaps.
:func:`subscribe` builds a client and its open subscription in one call.

Errors: Redis and socket failures become :class:`~taskline.domain.errors.StorageError` chained
``from`` the driver's error (:func:`redis_errors`); no ``redis`` exception leaves these
modules.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from taskline.domain.errors import StorageError

__all__ = [
    "OnMessage",
    "Subscription",
    "as_text",
    "connect",
    "publish",
    "redact",
    "redis_errors",
    "subscribe",
]

logger = logging.getLogger(__name__)

#: Receives the data of one message on the channel.
OnMessage = Callable[[Any], Awaitable[None]]

_POLL_INTERVAL = 1.0  # seconds between wake-ups of an idle listener (health checks run then)


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Translate driver and socket errors into :class:`StorageError` (``from`` the original)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StorageError(f"Redis: could not {action}: {exc or type(exc).__name__}") from exc


def redact(url: str) -> str:
    """``url`` without its password, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))


def connect(
    url: str,
    *,
    timeout: float,
    name: str,
    health_checks: bool = True,
    retry_once: bool = False,
) -> Redis:
    """A client (connection pool) for ``url``: ``timeout`` to connect and per command,
    keepalive on, named ``name`` in ``CLIENT LIST``. Connects lazily.

    ``health_checks``: a connection idle 30 s is checked (``PING``) before its next use.
    ``retry_once``: a command failing with a connection error or a timeout is sent once more
    at once, on a fresh connection (it may then run twice, if only its reply was lost);
    otherwise the error is raised.
    """
    retry: dict[str, Any] = {"retry": Retry(NoBackoff(), 1)} if retry_once else {}
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        socket_keepalive=True,
        health_check_interval=30 if health_checks else 0,
        client_name=name,
        **retry,
    )


def as_text(value: object) -> str | None:
    """A reply as text: bytes decoded (UTF-8), a str as is, anything else (``None``) None."""
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


async def publish(client: Redis, channel: str, payload: bytes, *, action: str) -> int:
    """Publish ``payload``; return how many subscribers took it.

    A connection the pool kept from before an outage fails at its first use: the pool has
    dropped it then, so it is tried once more on a fresh one (which fails at once if Redis
    is still down).

    Raises:
        StorageError: Redis refused or could not be reached (``action`` names what failed).
    """
    with redis_errors(action):
        try:
            return int(await client.publish(channel, payload))
        except RedisConnectionError:
            return int(await client.publish(channel, payload))


class Subscription:
    """One channel's subscription, kept alive by a listener task (see the module docstring).

    Args:
        client: the client to subscribe with (its owner closes it, after :meth:`close`).
        channel: the channel.
        on_message: awaited with each message's data, in order, in the listener task; it
            must not raise (it logs and drops what it cannot use).
        where: how errors name the server (a redacted URL).

    Lifecycle: ``open`` (subscribe, then listen) → ``close``. Closing twice is harmless.
    """

    def __init__(
        self,
        client: Redis,
        channel: str,
        on_message: OnMessage,
        *,
        where: str,
        name: str,
        timeout: float = 5.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self._on_message = on_message
        self._where = where
        self._name = name
        self._timeout = timeout
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        #: How many times the subscription was re-established after a failure.
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """True while the subscription is held; False from the moment the listener sees the
        link fail until it has subscribed again."""
        return self._pubsub is not None

    async def open(self) -> None:
        """Subscribe (confirmed by Redis), then start the listener task.

        Raises:
            StorageError: Redis cannot be reached; nothing was started.
        """
        self._pubsub = await self._subscribe()
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name=self._name)

    async def close(self) -> None:
        """Stop the listener (messages arriving meanwhile are dropped), then unsubscribe."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.wait({listener})
        await self._drop()

    async def _subscribe(self) -> PubSub:
        """A new pub/sub connection subscribed to the channel, confirmed by Redis."""
        pubsub = self.client.pubsub()
        try:
            with redis_errors(f"subscribe to channel {self.channel!r} at {self._where}"):
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

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            except (RedisError, OSError):
                logger.debug("error while closing a broken Redis subscription", exc_info=True)

    async def _listen(self) -> None:
        """Receive messages until cancelled; resubscribe with backoff whenever the link fails."""
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
                    await self._on_message(reply["data"])
                continue
            await self._drop()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._max_reconnect_delay)


async def subscribe(
    url: str,
    channel: str,
    on_message: OnMessage,
    *,
    client_name: str,
    listener_name: str,
    timeout: float = 5.0,
    reconnect_delay: float = 0.1,
    max_reconnect_delay: float = 5.0,
) -> Subscription:
    """A new client for ``url`` (:func:`connect`, named ``client_name``) and its open
    :class:`Subscription` to ``channel`` (listener task ``listener_name``). The caller closes
    the subscription, then its ``client``; the listener first runs at the caller's next
    ``await``.

    Raises:
        StorageError: Redis cannot be reached; the client is closed again, nothing runs.
    """
    client = connect(url, timeout=timeout, name=client_name)
    subscription = Subscription(
        client,
        channel,
        on_message,
        where=redact(url),
        name=listener_name,
        timeout=timeout,
        reconnect_delay=reconnect_delay,
        max_reconnect_delay=max_reconnect_delay,
    )
    try:
        await subscription.open()
    except BaseException:
        await client.aclose()
        raise
    return subscription
