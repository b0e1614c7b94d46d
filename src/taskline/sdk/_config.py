"""Value objects for the SDK's live side: how to retry, and how events are delivered.

Both are frozen and compare by value; every limit has a numeric default and a docstring that
says what ``None`` means where ``None`` is allowed.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal

__all__ = [
    "CLIENT_DEFAULT",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Backoff",
    "ClientDefault",
    "DeliveryOptions",
]


class _Sentinel(Enum):
    CLIENT_DEFAULT = "client default"


#: "Use the client's setting" (as opposed to ``None``, which means "no limit").
CLIENT_DEFAULT: Final = _Sentinel.CLIENT_DEFAULT
ClientDefault = Literal[_Sentinel.CLIENT_DEFAULT]

DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds allowed for each of connect, read, write and pool acquisition of REST calls.
DEFAULT_TIMEOUT = 10.0
#: Seconds between the heartbeats a live connection sends (the server's ``stale_after`` is
#: 300 s by default, so 20 s leaves a wide margin).
DEFAULT_HEARTBEAT_INTERVAL = 20.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter for reconnecting.

    The n-th delay (n = 0, 1, ...) is ``min(maximum, initial * factor**n)``, multiplied by a
    random factor in ``[1 - jitter, 1]`` so that many clients cut off by one server restart do
    not all come back in the same instant. The sequence restarts after every successful
    connection.

    Args:
        initial: the first delay in seconds (> 0).
        maximum: no delay is longer than this (>= ``initial``).
        factor: growth per attempt (>= 1).
        jitter: fraction of each delay that is randomised, 0 (none) to 1.
        give_up_after: seconds without a working connection after which reconnecting stops
            and the error surfaces; ``None`` retries until the caller closes.

    Raises:
        ValueError: a value out of range.
    """

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("Backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("Backoff.factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff.jitter must be between 0 and 1")
        if self.give_up_after is not None and self.give_up_after <= 0:
            raise ValueError("Backoff.give_up_after must be > 0 or None")

    def delays(self) -> Iterator[float]:
        """Yield the delays to sleep before each reconnection attempt, forever."""
        delay = self.initial
        while True:
            yield delay * (1 - self.jitter * random.random())  # jitter, not secrets
            delay = min(self.maximum, delay * self.factor)


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How a run's events travel over the agent connection.

    Events wait in a bounded buffer, go out in batches over one WebSocket and stay in the
    buffer until the server acknowledges them; unacknowledged batches are re-sent (same event
    ids, so the server stores each once) after a reconnection.

    Args:
        buffer_size: events that may be waiting (queued or sent but not acknowledged). When it
            is full, publishing awaits until acknowledgements free room; nothing is dropped.
        batch_size: most events per batch (the server accepts up to 1,000).
        max_batch_bytes: most bytes of encoded events per batch; a single event larger than
            this is refused when it is published (:class:`InvalidEvent`). The default stays
            under the server's WebSocket frame limit (256 KiB with default settings: uvicorn's
            ``ws_max_size``), which closes the connection on larger frames.
        linger: seconds an event may wait for companions while earlier batches are still
            unacknowledged; with nothing in flight, an event leaves at once.
        max_in_flight: batches sent and not yet acknowledged at any moment (>= 1).
        flush_timeout: seconds ``flush()`` and leaving a run wait for acknowledgements, and
            publishing waits for room in a full buffer; ``None`` waits as long as it takes.
        connect_timeout: seconds for one connection attempt (TCP, TLS and handshake).
        close_timeout: seconds to wait for the closing handshake.
        heartbeat_interval: seconds between heartbeats; the server's ``welcome`` may ask for a
            shorter interval, which then wins.
        backoff: how reconnection attempts are spaced.

    Raises:
        ValueError: a value out of range.
    """

    buffer_size: int = 10_000
    batch_size: int = 500
    max_batch_bytes: int = 196_608
    linger: float = 0.02
    max_in_flight: int = 4
    flush_timeout: float | None = 60.0
    connect_timeout: float = 10.0
    close_timeout: float = 5.0
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise ValueError("DeliveryOptions.buffer_size must be >= 1")
        if not 1 <= self.batch_size <= 1000:
            raise ValueError("DeliveryOptions.batch_size must be between 1 and 1000")
        if self.max_batch_bytes < 1024:
            raise ValueError("DeliveryOptions.max_batch_bytes must be >= 1024")
        if self.linger < 0:
            raise ValueError("DeliveryOptions.linger must be >= 0")
        if self.max_in_flight < 1:
            raise ValueError("DeliveryOptions.max_in_flight must be >= 1")
        if self.flush_timeout is not None and self.flush_timeout <= 0:
            raise ValueError("DeliveryOptions.flush_timeout must be > 0 or None")
        if self.connect_timeout <= 0 or self.close_timeout <= 0:
            raise ValueError("DeliveryOptions timeouts must be > 0")
        if self.heartbeat_interval <= 0:
            raise ValueError("DeliveryOptions.heartbeat_interval must be > 0")
