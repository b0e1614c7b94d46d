"""The direct channel: a connection the fan-out writes ready-made frames to, without awaiting.

A server that offers it (Taskline's own uvicorn WebSocket protocol,
:mod:`taskline.ws_protocol`) puts the channel into the ASGI scope as
``scope["extensions"][DIRECT_CHANNEL]["channel"]``. The ConnectionManager then frames each
event once (:func:`text_frame`) and writes the very same bytes to every subscriber that is up
to date, at most once per flush interval per subscriber, instead of running one writer task
per connection that awaits the ASGI ``send`` for every frame. Where there is no channel (another
ASGI server, the SSE stream) the manager falls back to that writer task.
"""

import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["DIRECT_CHANNEL", "DirectChannel", "direct_channel", "text_frame"]

#: The ASGI scope extension under which a server offers a :class:`DirectChannel`.
DIRECT_CHANNEL = "taskline.direct_channel"


class DirectChannel(Protocol):
    """What the fan-out needs from an accepted WebSocket connection."""

    @property
    def writable(self) -> bool:
        """True while the connection is open and its send buffer is below the high-water mark."""
        ...

    def write_frames(self, data: bytes) -> None:
        """Write one or more complete frames (as made by :func:`text_frame`); never blocks.

        Does nothing once the connection is closing.
        """
        ...

    def set_writable_callback(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` each time the send buffer drains after having been full."""
        ...


def direct_channel(scope: Mapping[str, Any]) -> DirectChannel | None:
    """The direct channel the server put into ``scope``, or None when it offers none."""
    extensions = scope.get("extensions")
    if not isinstance(extensions, dict):
        return None
    offered = extensions.get(DIRECT_CHANNEL)
    channel: DirectChannel | None = offered.get("channel") if isinstance(offered, dict) else None
    return channel


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (RFC 6455 §5.2; server to client).

    ``payload`` must be UTF-8; no extension (compression) is applied.
    """
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload
