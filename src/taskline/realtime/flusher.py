"""Writing queued frames to direct-channel connections: at most once per flush interval
each, with the bytes built once for every connection that has the same frames pending.

A connection that offers a direct channel (:mod:`taskline.realtime.channel`) has no writer
task: when its outbox stops being empty it is marked dirty, and one flush per
``interval`` writes every dirty connection's frames in one ``transport.write``. A connection
whose send buffer is full is skipped and counts as blocked (the write watchdog closes one
that stays blocked); its channel marks it dirty again when the buffer drains.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from taskline.realtime.channel import DirectChannel, text_frame
from taskline.realtime.subscriber import Subscriber

__all__ = ["Flusher"]

logger = logging.getLogger("taskline.realtime")

#: Looks a dirty client id up: its subscriber and channel, or None once it is gone.
Lookup = Callable[[str], tuple[Subscriber, DirectChannel] | None]
#: Called for a connection whose write failed (it is then closed).
Failed = Callable[[Subscriber], None]


class Flusher:
    """Dirty direct-channel connections and the timer that writes them.

    Args:
        interval: seconds between writes (0: as soon as the event loop is free).
    """

    def __init__(self, lookup: Lookup, failed: Failed, *, interval: float) -> None:
        self.interval = interval
        self._lookup = lookup
        self._failed = failed
        self._dirty: dict[str, None] = {}  # client ids with frames to write, in order
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None

    def mark(self, client_id: str) -> None:
        """The connection has frames to write (or can write again)."""
        self._dirty[client_id] = None
        if self._handle is None:
            loop = asyncio.get_running_loop()
            if self.interval > 0:
                self._handle = loop.call_later(self.interval, self.flush)
            else:
                self._handle = loop.call_soon(self.flush)

    def forget(self, client_id: str) -> None:
        self._dirty.pop(client_id, None)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def flush(self) -> None:
        """Write every dirty connection's pending frames (see the module docstring)."""
        self._handle = None
        dirty, self._dirty = self._dirty, {}
        shared: dict[tuple[object, ...], bytes] = {}
        for client_id in dirty:
            found = self._lookup(client_id)
            if found is not None:
                self.write(*found, shared)

    def write(
        self,
        subscriber: Subscriber,
        channel: DirectChannel,
        shared: dict[tuple[object, ...], bytes] | None = None,
    ) -> None:
        """Write one connection's pending frames now, if its channel takes them."""
        if not subscriber.delivery:
            return
        if not channel.writable:
            if not subscriber.blocked_since:
                subscriber.blocked_since = time.monotonic()
            return
        frames: list[str] = subscriber.take()  # type: ignore[assignment]  # frames, no pairs
        key = (subscriber.batch, *frames)
        data = shared.get(key) if shared is not None else None
        if data is None:
            if subscriber.batch:
                data = text_frame(("[" + ",".join(frames) + "]").encode())
            else:
                data = b"".join([text_frame(frame.encode()) for frame in frames])
            if shared is not None:
                shared[key] = data
        try:
            channel.write_frames(data)
        except Exception:
            logger.exception("writing to %s failed", subscriber.client_id)
            self._failed(subscriber)
            return
        subscriber.messages_sent += len(frames)
