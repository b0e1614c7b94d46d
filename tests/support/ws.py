"""Real WebSocket clients for tests (the ``websockets`` library)."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

__all__ = ["collect_events", "open_ws", "receive", "receive_until"]


@asynccontextmanager
async def open_ws(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """Connect (no compression, like a lean client) and close on exit."""
    async with connect(url, compression=None, open_timeout=10, **kwargs) as websocket:
        yield websocket


async def receive(websocket: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """Receive one envelope (not a batch)."""
    import asyncio

    raw = await asyncio.wait_for(websocket.recv(), timeout)
    message: dict[str, Any] = json.loads(raw)
    return message


async def receive_until(
    websocket: ClientConnection, event_type: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Receive envelopes up to and including the first of ``event_type``."""
    seen = []
    while True:
        message = await receive(websocket, timeout)
        seen.append(message)
        if message["event_type"] == event_type:
            return seen


async def collect_events(
    websocket: ClientConnection, until_seq: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Receive until the task event with ``seq == until_seq``; return the task events only."""
    events = []
    while True:
        message = await receive(websocket, timeout)
        if message.get("seq") is not None:
            events.append(message)
            if message["seq"] >= until_seq:
                return events
