"""WebSocket frames on a raw socket (RFC 6455 §5), for tests that send what no client library
would: reserved bits and opcodes, unmasked or fragmented control frames, odd close payloads,
length headers that claim more than they carry, bytes that are not frames at all.

:class:`RawWebSocket` upgrades by hand (§4.1) and then writes whatever bytes it is given;
:func:`encode_frame` builds client frames, valid or not; :meth:`RawWebSocket.read_frame`
parses what the server sends back and keeps whatever it finds wrong with it.
"""

import base64
import hashlib
import os
import socket
import struct
import time
from dataclasses import dataclass

__all__ = [
    "CONTROL_OPCODES",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "RawWebSocket",
    "ServerFrame",
    "close_payload",
    "encode_frame",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_KNOWN_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY, *CONTROL_OPCODES})
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _mask(payload: bytes, key: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    keystream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(size, "big")


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    declared: int | None = None,
    mask_key: bytes | None = None,
) -> bytes:
    """One client frame. ``rsv`` sets RSV1-3 (bits 4..6 of the first byte, 0..7); ``declared``
    writes a length header claiming that many bytes and nothing after it (no mask key, no
    payload): a server with a smaller limit must refuse it from the header alone."""
    length = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if declared is not None:
        return head
    if not masked:
        return head + payload
    key = os.urandom(4) if mask_key is None else mask_key
    return head + key + _mask(payload, key)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """The payload of a close frame: the code (two bytes, network order) and the reason."""
    return struct.pack("!H", code) + reason


@dataclass(frozen=True)
class ServerFrame:
    """A frame as the server sent it."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The code of a close frame (None when it has no payload)."""
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        code: int = struct.unpack("!H", self.payload[:2])[0]
        return code

    def problems(self) -> list[str]:
        """What RFC 6455 forbids a server to send, found in this frame."""
        found = []
        if self.masked:
            found.append("masked")
        if self.rsv:
            found.append(f"RSV bits {self.rsv:03b}")
        if self.opcode not in _KNOWN_OPCODES:
            found.append(f"opcode {self.opcode:#x}")
        if self.opcode in CONTROL_OPCODES and (len(self.payload) > 125 or not self.fin):
            found.append("control frame fragmented or over 125 bytes")
        if self.opcode == OP_CLOSE and len(self.payload) == 1:
            found.append("close payload of 1 byte")
        if self.opcode == OP_TEXT:
            try:
                self.payload.decode()
            except UnicodeDecodeError:
                found.append("text frame that is not UTF-8")
        return found


class RawWebSocket:
    """A client socket that upgrades by hand, then writes the bytes it is given.

    ``send`` swallows the errors of writing to a connection the server already closed (it may
    rightly close first); ``read_frame`` returns None at the end of the stream.
    """

    def __init__(self, port: int, path: str, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.status: int | None = None
        self.response_head = b""
        self.write_failed = False  #: a write found the connection closed or reset
        self.reset = False  #: reading found the connection reset (not closed in order)

    def __enter__(self) -> "RawWebSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def upgrade(self, headers: dict[str, str] | None = None) -> int:
        """Send the opening handshake and read the response head; return its status.

        A 101 must carry the accept key for the key sent (§4.2.2); anything else is kept
        in :attr:`response_head` (with the body that came with it).
        """
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise ConnectionError(f"the server closed during the handshake: {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.response_head = head
        self.status = int(head.split(b" ", 2)[1])
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
            }
            assert fields.get(b"sec-websocket-accept") == accept, head
        return self.status

    def send(self, data: bytes) -> None:
        if self.write_failed or not data:
            return
        try:
            self.sock.sendall(data)
        except OSError:  # reset or broken pipe: the server closed, as it may
            self.write_failed = True

    def shutdown_write(self) -> None:
        """Half-close: the server reads the end of the stream (the client sends no more)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.write_failed = True

    def read_frame(self, deadline: float) -> ServerFrame | None:
        """The next frame the server sent, or None at the end of the stream.

        Raises:
            TimeoutError: nothing complete arrived before ``deadline`` (a ``time.monotonic``).
        """
        while True:
            frame, used = _parse(self.buffer)
            if frame is not None:
                self.buffer = self.buffer[used:]
                return frame
            if not self._fill(deadline):
                if self.buffer:
                    raise ConnectionError(f"the stream ended inside a frame: {self.buffer[:40]!r}")
                return None

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; False at the end of the stream (or a reset)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing more from the server on {self.path}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"nothing more from the server on {self.path}") from None
        except ConnectionResetError:
            self.reset = True
            return False
        if not chunk:
            return False
        self.buffer += chunk
        return True


def _parse(data: bytes) -> tuple[ServerFrame | None, int]:
    """A frame from the front of ``data`` and its size, or (None, 0) if it is not all there."""
    if len(data) < 2:
        return None, 0
    first, second = data[0], data[1]
    size = second & 0x7F
    offset = 2
    if size == 126:
        if len(data) < 4:
            return None, 0
        size = struct.unpack("!H", data[2:4])[0]
        offset = 4
    elif size == 127:
        if len(data) < 10:
            return None, 0
        size = struct.unpack("!Q", data[2:10])[0]
        offset = 10
    masked = bool(second & 0x80)
    key = b""
    if masked:
        if len(data) < offset + 4:
            return None, 0
        key = data[offset : offset + 4]
        offset += 4
    if len(data) < offset + size:
        return None, 0
    payload = data[offset : offset + size]
    if masked:
        payload = _mask(payload, key)
    frame = ServerFrame(
        fin=bool(first & 0x80),
        rsv=(first >> 4) & 7,
        opcode=first & 0x0F,
        masked=masked,
        payload=payload,
    )
    return frame, offset + size
