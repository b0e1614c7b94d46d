"""A bounded per-connection queue of encoded frames, drained by a writer or by the fan-out."""

import asyncio
from collections.abc import Callable

__all__ = ["Outbox"]


class Outbox:
    """Frames waiting to be written to one connection.

    ``put`` never blocks and never drops: it returns ``False`` when the outbox is full, and the
    owner closes the connection (a slow consumer must not slow anyone else).

    Two ways to drain it: a writer task awaits :meth:`take`; or, when ``on_ready`` is given,
    the outbox calls it each time it stops being empty and the owner calls :meth:`drain`.
    Futures are only created while someone waits, and the frames are a plain list (a deque
    costs ~600 bytes even when empty), so an idle outbox costs almost nothing.
    """

    __slots__ = ("_frames", "_on_ready", "_ready", "_room", "capacity", "closed")

    def __init__(self, capacity: int, on_ready: Callable[[], None] | None = None) -> None:
        self.capacity = capacity
        self._frames: list[str] = []
        self._on_ready = on_ready
        self._ready: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: str) -> bool:
        """Queue ``frame``; ``False`` (and nothing queued) if the outbox is full or closed."""
        frames = self._frames
        if self.closed or len(frames) >= self.capacity:
            return False
        frames.append(frame)
        if len(frames) == 1:
            if self._on_ready is not None:
                self._on_ready()
            else:
                _wake(self._ready)
        return True

    async def take(self, *, batch: bool) -> list[str]:
        """Wait for frames; return one, or everything pending when ``batch`` is true.

        Returns an empty list once the outbox is closed and empty.
        """
        while not self._frames:
            if self.closed:
                return []
            self._ready = asyncio.get_running_loop().create_future()
            try:
                await self._ready
            finally:
                self._ready = None
        if batch:
            return self.drain()
        frame = self._frames.pop(0)
        self._made_room()
        return [frame]

    def drain(self) -> list[str]:
        """Remove and return everything pending (oldest first)."""
        frames, self._frames = self._frames, []
        self._made_room()
        return frames

    async def wait_for_room(self) -> None:
        """Wait until the outbox is at most half full (used to pace a replay)."""
        while len(self._frames) > self.capacity // 2 and not self.closed:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def close(self) -> None:
        """Stop accepting frames and wake whoever waits."""
        self.closed = True
        _wake(self._ready)
        _wake(self._room)

    def _made_room(self) -> None:
        if self._room is not None and len(self._frames) <= self.capacity // 2:
            _wake(self._room)


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
