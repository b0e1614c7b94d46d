"""A bounded per-connection queue of encoded frames, drained by one writer."""

import asyncio
from collections import deque

__all__ = ["Outbox"]


class Outbox:
    """Frames waiting to be written to one connection.

    ``put`` never blocks and never drops: it returns ``False`` when the outbox is full, and the
    owner closes the connection (a slow consumer must not slow anyone else).
    """

    __slots__ = ("_drained", "_frames", "_ready", "capacity", "closed")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: str) -> bool:
        """Queue ``frame``; ``False`` (and nothing queued) if the outbox is full or closed."""
        if self.closed or len(self._frames) >= self.capacity:
            return False
        self._frames.append(frame)
        self._ready.set()
        return True

    async def take(self, *, batch: bool) -> list[str]:
        """Wait for frames; return one, or everything pending when ``batch`` is true.

        Returns an empty list once the outbox is closed and empty.
        """
        while not self._frames:
            if self.closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        if batch:
            frames = list(self._frames)
            self._frames.clear()
        else:
            frames = [self._frames.popleft()]
        if len(self._frames) <= self.capacity // 2:
            self._drained.set()
        return frames

    async def wait_for_room(self) -> None:
        """Wait until the outbox is at most half full (used to pace a replay)."""
        while len(self._frames) > self.capacity // 2 and not self.closed:
            self._drained.clear()
            await self._drained.wait()

    def close(self) -> None:
        """Stop accepting frames and wake the writer."""
        self.closed = True
        self._ready.set()
        self._drained.set()
