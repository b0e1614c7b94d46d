"""Fuzzing every WebSocket endpoint on real sockets: ``/ws/tasks/{task_id}``, ``/ws/board`` and
``/ws/agents/{agent_id}`` (hardening, part 6).

Hypothesis builds the cases (derandomized: the same ones on every run; ``CASES`` per endpoint
and backend) and each is written on a raw socket after an upgrade by hand
(tests/support/raw_ws.py), so that frames no client library would send can be sent too:

- frame sequences: text and binary messages (random JSON, JSON shaped like the protocol's
  frames, agents' publish batches of random events, random text, invalid UTF-8, random bytes),
  fragmented ones with pings and unsolicited pongs between the fragments, messages over
  ``ws_max_message_bytes`` (the app closes with 1009) and length headers over the frame limit
  (the parser closes with 1009), reserved opcodes, RSV bits, unmasked frames, fragmented or
  long control frames, stray or missing continuations, close frames with odd payloads (one
  byte, codes RFC 6455 forbids, reasons that are not UTF-8); then a close or a half-close;
  all written in random chunks (frames split across reads);
- random bytes, and valid streams with random bytes changed, then a half-close;
- random paths and query strings (task and agent ids, since, epoch, client_id, batch, an
  agent's name and kind).

A frame sequence has one right answer, which :func:`predict` works out from RFC 6455 and the
server's limits: which messages reach the app (each is answered once: an ``error``, ``pong`` or
``heartbeat`` event; ``ack``, ``nack``, ``pong``... for agents), which pings get a pong, and how
the connection ends (the close code the server must send, or the client's close echoed). When
nothing stops the sequence early, the case waits for every answer before it closes: "answered
properly" is checked, not assumed. Random bytes and URLs have no single answer: the server
must answer or close with a code that makes sense (never 1011), and never hang.

After every case: ``/health`` answers 200; the server (in this process) logged no error and
no traceback; the connection is gone from the server's books (no hung connection). Every
``CONTROL_EVERY`` cases and at the end the connections kept open throughout are checked: the
subscriber of the fuzzed task has every event published so far (one is published during each
case), in seq order and without a gap; the board subscriber and an agent still answer, and
the agent's publishes are acknowledged.
"""

import json
import logging
import os
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as sync_connect

from taskline.domain.events import WebSocketEventType
from taskline.domain.status import AgentStatus
from taskline.settings import Settings
from tests.support.databases import empty_database
from tests.support.raw_ws import (
    CONTROL_OPCODES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWebSocket,
    ServerFrame,
    close_payload,
    encode_frame,
)
from tests.support.rest import new_task, publish
from tests.support.server import LiveServer
from tests.support.waiting import TIME_SCALE, WAIT, wait_until

#: Cases per endpoint and backend (TASKLINE_FUZZ_CASES raises it for a longer hunt).
CASES = int(os.environ.get("TASKLINE_FUZZ_CASES", "250"))
#: Seconds a fuzzed connection has to answer or close (answers take milliseconds).
CASE_WAIT = 10 * TIME_SCALE
#: The connections kept open are checked after this many cases (and at the end).
CONTROL_EVERY = 20
#: Close codes a client may send (RFC 6455 §7.4.1; 3000-4999 are registered or private).
RFC_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})
#: Close codes the server may end a fuzzed connection with, when it is not echoing the
#: client's: protocol error, invalid data, policy (a bad query), too big, and Taskline's own
#: refusals (another's client id, unknown task, void cursor). 1011 (a server error) never.
SENSIBLE_CODES = frozenset({1000, 1002, 1007, 1008, 1009, 4403, 4404, 4409})
CONTROL_AGENT = "agent_control"
FUZZ_AGENT = "agent_fuzz"


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn as often as its weight says (``st.one_of`` draws
    its distinct branches about equally often, however often one is repeated)."""
    options = [strategy for _, strategy in choices]
    picks = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(options.__getitem__)


def rfc_close_code(code: int) -> bool:
    return code in RFC_CLOSE_CODES or 3000 <= code < 5000


# --- the server, its log, and the connections kept open ---------------------------------------


class ServerLog(logging.Handler):
    """Keeps the warnings and errors logged in this process (the server runs in a thread)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self, since: int) -> list[str]:
        """Errors and tracebacks logged after the first ``since`` records."""
        found = []
        for record in self.records[since:]:
            text = record.getMessage()
            if record.exc_info or record.levelno >= logging.ERROR or "Traceback" in text:
                exc = record.exc_info[1] if record.exc_info else None
                found.append(f"{record.name} {record.levelname}: {text} {exc!r}")
        return found


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    #: bytes of one client message past which the app closes with 1009
    app_limit: int


class Controls:
    """The connections open throughout: a subscriber of the fuzzed task, one of the board, and
    an agent; and the record of every event published to the task (acknowledged seqs)."""

    def __init__(self, server: LiveServer, http: httpx.Client, task_id: str) -> None:
        self.http = http
        self.task_id = task_id
        options: dict[str, Any] = {"compression": None, "open_timeout": 10, "ping_interval": None}
        self.stack = ExitStack()
        self.task_ws, self.board_ws, self.agent_ws = (
            self.stack.enter_context(sync_connect(f"{server.ws_url}{path}", **options))
            for path in (f"/ws/tasks/{task_id}", "/ws/board", f"/ws/agents/{CONTROL_AGENT}")
        )
        for ws in (self.task_ws, self.board_ws):
            assert json.loads(ws.recv(10))["event_type"] == "connection_established"
        assert json.loads(self.agent_ws.recv(10))["type"] == "welcome"
        self.acked: list[int] = []  #: seqs acknowledged to publishers, in order
        self.seen: list[int] = []  #: seqs the task's subscriber received, in order
        self.checks = 0

    def close(self) -> None:
        self.stack.close()

    def tick(self) -> None:
        """Publish one event to the fuzzed task (REST), as its other publishers go on."""
        event = {"event_type": "custom", "data": {"name": "tick", "value": len(self.acked)}}
        self.acked += publish(self.http, self.task_id, event)

    def check(self) -> None:
        """The agent's publish is acknowledged and its ping answered, the board subscriber
        answers, and the task's subscriber has every acknowledged event, in order, no gap."""
        self.checks += 1
        deadline = time.monotonic() + WAIT
        batch = {
            "type": "publish",
            "batch_id": f"check-{self.checks}",
            "task_id": self.task_id,
            "events": [{"event_type": "custom", "data": {"name": "agent", "value": self.checks}}],
        }
        self.agent_ws.send(json.dumps(batch))
        ack = _until(self.agent_ws, deadline, lambda m: m.get("type") in {"ack", "nack"})
        assert ack["type"] == "ack" and ack["batch_id"] == batch["batch_id"], ack
        self.acked += ack["seqs"]
        self.agent_ws.send(json.dumps({"type": "ping", "timestamp": self.checks}))
        _until(self.agent_ws, deadline, lambda m: m.get("client_timestamp") == self.checks)
        self.board_ws.send(json.dumps({"type": "ping", "timestamp": self.checks}))
        _until(
            self.board_ws,
            deadline,
            lambda m: m.get("data", {}).get("client_timestamp") == self.checks,
        )
        target = max(self.acked)
        while not self.seen or self.seen[-1] < target:
            for envelope in _envelopes(_recv(self.task_ws, deadline)):
                if envelope.get("seq") is not None:
                    self.seen.append(envelope["seq"])
        assert self.seen == list(range(self.seen[0], self.seen[-1] + 1)), "a gap or a repeat"
        assert self.seen[0] == 2  # connected right after task_created (seq 1)
        assert set(self.acked) <= set(self.seen)


def _recv(ws: ClientConnection, deadline: float) -> Any:
    return json.loads(ws.recv(max(0.0, deadline - time.monotonic())))


def _until(ws: ClientConnection, deadline: float, wanted: Callable[[Any], bool]) -> Any:
    while True:
        message = _recv(ws, deadline)
        if isinstance(message, dict) and wanted(message):
            return message


def _envelopes(message: Any) -> list[Any]:
    return message if isinstance(message, list) else [message]


# --- frames and what the server must make of them --------------------------------------------


@dataclass(frozen=True, repr=False)
class F:
    """One client frame to write (see :func:`~tests.support.raw_ws.encode_frame`)."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    declared: int | None = None

    def encode(self) -> bytes:
        return encode_frame(
            self.opcode,
            self.payload,
            fin=self.fin,
            rsv=self.rsv,
            masked=self.masked,
            declared=self.declared,
        )

    @property
    def length(self) -> int:
        return len(self.payload) if self.declared is None else self.declared

    @property
    def header_size(self) -> int:
        return 2 + (0 if self.length < 126 else 2 if self.length < 1 << 16 else 8)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        flags = "".join(
            [
                "" if self.fin else " nofin",
                f" rsv={self.rsv}" if self.rsv else "",
                "" if self.masked else " unmasked",
                f" declared={self.declared}" if self.declared is not None else "",
            ]
        )
        shown = self.payload[:40] + (b"..." if len(self.payload) > 40 else b"")
        return f"F({self.opcode:#x}{flags}, {len(self.payload)} B {shown!r})"


Ending = tuple[str, int | bytes | None]  # ("code", n) | ("echo", payload) | ("none", None)


@dataclass
class Prediction:
    """What the server must do with a frame sequence."""

    stream: bytes  #: the bytes to write: the frames up to where the server stops reading
    body_size: int  #: bytes of ``stream`` before the tail (the ending close frame)
    clean: bool  #: nothing stops the body: every message and ping is answered before the tail
    messages: int  #: messages the app gets before anything stops the sequence
    pings: list[bytes]  #: pings the server may answer, in order
    pings_sure: int  #: how many of those it answers for sure
    endings: set[Ending]  #: the ways the server may end the connection
    half_close: bool  #: end with a half-close (the tail is no frame)


def close_problem(payload: bytes, fragmented: bool) -> int | None:
    """The code a server fails the connection with for this close payload (websockets checks
    the reason's UTF-8 before the code, and both before the unfinished message)."""
    if len(payload) == 1:
        return 1002
    if len(payload) >= 2:
        try:
            payload[2:].decode()
        except UnicodeDecodeError:
            return 1007
        if not rfc_close_code(struct.unpack("!H", payload[:2])[0]):
            return 1002
    return 1002 if fragmented else None


def _refusal(frame: F, limit: int, *, fragmented: bool) -> tuple[int | None, int | None]:
    """The code the parser fails the connection with for ``frame`` (None: it takes it), and
    where in the frame it stops reading (None: at its end)."""
    if frame.opcode not in {OP_CONT, OP_TEXT, OP_BINARY, *CONTROL_OPCODES} or not frame.masked:
        return 1002, 2  # refused from the first two bytes
    if frame.length > limit:
        return 1009, frame.header_size  # refused from the length header
    if frame.declared is not None:
        raise AssertionError("a declared length must be over the limit")
    if frame.rsv or (frame.opcode in CONTROL_OPCODES and (frame.length > 125 or not frame.fin)):
        return 1002, None
    if frame.opcode in (OP_TEXT, OP_BINARY) and fragmented:
        return 1002, None  # a new message inside a fragmented one
    if frame.opcode == OP_CONT and not fragmented:
        return 1002, None  # a continuation of nothing
    if frame.opcode == OP_CLOSE:
        return close_problem(frame.payload, fragmented), None
    return None, None


def predict(body: list[F], tail: F | None, *, app_limit: int, max_size: int) -> Prediction:
    """Work out the server's answer to ``body`` then ``tail`` (a close; None: a half-close).

    ``max_size`` is the parser's limit on a message (its frames so far and the next one),
    ``app_limit`` the app's on a complete message. The sequence stops for good (nothing after
    is written) at a frame the parser refuses, at a close, and at a text message that is not
    UTF-8. A message over ``app_limit`` makes the app close (1009) when it reads it, while the
    parser goes on: when nothing later in the body could end the connection first, the client
    waits for that close instead of sending its tail; otherwise either may come first, and
    ``endings`` holds each possibility.
    """
    frames = [*body, *([tail] if tail is not None else [])]
    stream = b""
    body_size = 0
    fragment: list[bytes] | None = None
    fragment_text = False
    current = 0
    messages = 0
    pings: list[bytes] = []
    pings_sure = 0
    stopped = False  # a stop happened (the app closed, or the connection failed)
    endings: set[Ending] = set()
    terminal: int | None = None
    for index, frame in enumerate(frames):
        if index == len(body):
            body_size = len(stream)
        encoded = frame.encode()
        limit = max_size - current if fragment is not None else max_size
        code, cut = _refusal(frame, limit, fragmented=fragment is not None)
        cut = len(encoded) if cut is None else cut
        stream += encoded[:cut]
        if code is not None:
            endings.add(("code", code))
            terminal = index
            break
        if frame.opcode == OP_PING:
            pings.append(frame.payload)
            pings_sure += not stopped
        elif frame.opcode == OP_CLOSE:
            endings.add(("echo", frame.payload))
            terminal = index
            break
        elif frame.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            if frame.opcode != OP_CONT:
                fragment, fragment_text, current = [], frame.opcode == OP_TEXT, 0
            assert fragment is not None
            fragment.append(frame.payload)
            current += len(frame.payload)
            if not frame.fin:
                continue
            data, fragment, current = b"".join(fragment), None, 0
            if fragment_text:
                try:
                    data.decode()
                except UnicodeDecodeError:
                    endings.add(("code", 1007))  # the server checks UTF-8 per message
                    terminal = index
                    break
            if len(data) > app_limit:
                if not stopped:
                    endings.add(("code", 1009))
                stopped = True
            elif not stopped:
                messages += 1
    else:
        body_size = len(stream)  # no tail: the case ends with a half-close
        endings.add(("none", None))  # the half-close: no close frame, the server hangs up
    if terminal is not None and terminal < len(body):
        body_size = len(stream)
    clean = not stopped and (terminal is None or terminal >= len(body))
    if stopped and (terminal is None or terminal >= len(body)):
        # A message too big for the app, and nothing in the body that could end the connection
        # before the app reads it: the client waits for the app's 1009 before its own close.
        stream, endings, terminal = stream[:body_size], {("code", 1009)}, len(body)
    return Prediction(
        stream=stream,
        body_size=body_size,
        clean=clean,
        messages=messages,
        pings=pings,
        pings_sure=pings_sure,
        endings=endings,
        half_close=terminal is None,
    )


# --- cases ---------------------------------------------------------------------------------------


class _Shown:
    """Prints as its ``repr`` (payloads cut short), in Hypothesis's reports too."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True, repr=False)
class FrameCase(_Shown):
    body: tuple[F, ...]
    tail: F | None
    chunks: tuple[int, ...]
    kind: str = "frames"

    def __repr__(self) -> str:
        return f"FrameCase(body={list(self.body)}, tail={self.tail}, chunks={self.chunks})"


@dataclass(frozen=True)
class BytesCase(_Shown):
    data: bytes
    kind: str  # "bytes" (random) or "mutated" (a valid stream with bytes changed)

    def __repr__(self) -> str:
        shown = self.data[:200] + (b"..." if len(self.data) > 200 else b"")
        return f"BytesCase({shown!r}, {len(self.data)} B, {self.kind})"


@dataclass(frozen=True)
class UrlCase(_Shown):
    path: str
    kind: str = "url"


Case = FrameCase | BytesCase | UrlCase

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
SHORT_TEXT = st.text(max_size=12)
EVENT_TYPES = [t.value for t in WebSocketEventType]
AGENT_STATUSES = [s.value for s in AgentStatus]


def _typed(required: dict[str, Any], **optional: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


IDS = st.sampled_from(["a", "b"]) | st.text(min_size=1, max_size=8)
NAMES = st.text(min_size=1, max_size=12)
FRACTIONS = st.floats(0, 1) | st.sampled_from([0, 1])
OPERATION = _typed(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
        "path": st.sampled_from(["", "/", "/a", "/a/0", "/a/-", "/~1", "/b"]),
    },
    value=JSON,
    **{"from": st.sampled_from(["", "/a", "/b/0"])},
)
LIFE = _typed({}, reason=SHORT_TEXT, result=JSON, error=SHORT_TEXT)
#: Data each event type's schema takes (mostly), so that events get past it and do what they do.
TYPED_DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "custom": _typed({"name": NAMES}, value=JSON),
    "progress_update": _typed({"progress": FRACTIONS}, message=SHORT_TEXT, confidence=FRACTIONS),
    "confidence_update": _typed({"confidence": FRACTIONS}),
    "message.start": _typed({"message_id": IDS}, role=st.sampled_from(["assistant", "user"])),
    "message.delta": _typed({"message_id": IDS, "delta": SHORT_TEXT}),
    "message.end": _typed({"message_id": IDS}),
    "tool_call.start": _typed({"tool_call_id": IDS, "name": NAMES}, args=JSON),
    "tool_call.args": _typed({"tool_call_id": IDS, "delta": SHORT_TEXT}),
    "tool_call.end": _typed(
        {"tool_call_id": IDS}, result=JSON, error=SHORT_TEXT, duration_ms=st.floats(0, 1e9)
    ),
    "tool_call.result": _typed({"tool_call_id": IDS, "content": JSON}),
    "state.snapshot": _typed({"snapshot": JSON}, version=st.integers(-(2**70), 2**70)),
    "state.patch": _typed(
        {"patch": st.lists(OPERATION, min_size=1, max_size=3)},
        version=st.integers(-(2**70), 2**70),
    ),
    "step.start": _typed({"name": NAMES}),
    "step.end": _typed({"name": NAMES}),
    "agent_status_change": _typed(
        {
            "agent_id": st.sampled_from([FUZZ_AGENT, CONTROL_AGENT, "agent_nobody"]) | SHORT_TEXT,
            "status": st.sampled_from(AGENT_STATUSES),
        },
        previous=st.sampled_from(AGENT_STATUSES),
    ),
    "error": _typed({"message": SHORT_TEXT}, code=SHORT_TEXT),
    "subtask_updated": _typed(
        {"subtask_id": IDS}, section_id=IDS, done=st.booleans(), title=SHORT_TEXT
    ),
    "task_updated": _typed(
        {}, task=st.dictionaries(SHORT_TEXT, JSON, max_size=2), changes=st.lists(SHORT_TEXT)
    ),
    **{
        kind: LIFE
        for kind in (
            "task_started",
            "task_paused",
            "task_resumed",
            "task_completed",
            "task_failed",
            "task_cancelled",
        )
    },
}
TIMESTAMPS = st.sampled_from(
    ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "2026-01-02T03:04:05+14:00", "yesterday", ""]
)
#: An event's other fields, as a publisher would send them (``loose`` events get odd ones).
ENVELOPE = {
    "id": st.from_regex(r"evt_fz[0-9a-z]{1,4}", fullmatch=True),
    "timestamp": st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T03:04:05+14:00"]),
    "source": SHORT_TEXT,
    "run_id": SHORT_TEXT,
    "agent_id": st.sampled_from([FUZZ_AGENT, CONTROL_AGENT]) | SHORT_TEXT,
    "client_id": SHORT_TEXT,
}


def events() -> st.SearchStrategy[Any]:
    """One event as an agent might send it: mostly one its type's schema takes, sometimes
    one with random data, an unknown type, stray fields, or something that is not an event."""
    typed = st.sampled_from(sorted(TYPED_DATA)).flatmap(
        lambda kind: _typed({"event_type": st.just(kind), "data": TYPED_DATA[kind]}, **ENVELOPE)
    )
    loose = _typed(
        {"event_type": st.sampled_from(EVENT_TYPES) | SHORT_TEXT},
        data=st.dictionaries(SHORT_TEXT, JSON, max_size=3) | JSON,
        seq=JSON,
        id=SHORT_TEXT | JSON,
        timestamp=TIMESTAMPS | JSON,
        source=SHORT_TEXT | JSON,
        agent_id=st.text(max_size=100),
    )
    return weighted((6, typed), (1, loose), (1, JSON))


def json_messages(endpoint: Endpoint, sandbox_task: str) -> st.SearchStrategy[Any]:
    """JSON shaped like the endpoint's client frames (and random JSON)."""
    types = ["ping", "heartbeat", "publish", "PING", ""]
    shaped = st.fixed_dictionaries(
        {"type": st.sampled_from(types) | SHORT_TEXT},
        optional={"timestamp": JSON, "extra": JSON},
    )
    if endpoint.name != "agent":
        return shaped | JSON
    publishes = st.fixed_dictionaries(
        {
            "type": st.just("publish"),
            "task_id": weighted((8, st.just(sandbox_task)), (1, st.just("task_nope")), (1, JSON)),
            "events": weighted((8, st.lists(events(), min_size=1, max_size=3)), (1, JSON)),
        },
        optional={"batch_id": JSON},
    )
    return weighted((4, publishes), (2, shaped), (1, JSON))


def invalid_utf8() -> st.SearchStrategy[bytes]:
    bad = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"])
    return st.tuples(SHORT_TEXT, bad, SHORT_TEXT).map(
        lambda parts: parts[0].encode() + parts[1] + parts[2].encode()
    )


Payload = st.SearchStrategy[tuple[int, bytes]]


def payloads(endpoint: Endpoint, sandbox_task: str) -> tuple[Payload, Payload]:
    """Messages (an opcode and a payload): small ones, and ones about the app's limit."""
    dumps = st.tuples(json_messages(endpoint, sandbox_task), st.booleans()).map(
        lambda value: json.dumps(value[0], ensure_ascii=value[1]).encode()
    )
    limit = endpoint.app_limit
    sizes = {  # a message at, under or over the app's limit, by `by` bytes
        "ascii": lambda by: (OP_TEXT, b"x" * (limit + by)),
        "json": lambda by: (
            OP_TEXT,
            b'{"type": "ping", "pad": "' + b"x" * (limit + by - 29) + b'"}',
        ),
        "accented": lambda by: (OP_TEXT, "\u00e9".encode() * ((limit + by) // 2)),  # 2 B/char
        "binary": lambda by: (OP_BINARY, b"\x00" * (limit + by)),
    }
    big = st.builds(
        lambda kind, by: sizes[kind](by), st.sampled_from(list(sizes)), st.integers(-2, 64)
    )
    small = weighted(
        (12, dumps.map(lambda data: (OP_TEXT, data))),
        (1, dumps.map(lambda data: (OP_BINARY, data))),
        (1, st.text(max_size=24).map(lambda text: (OP_TEXT, text.encode()))),
        (1, invalid_utf8().map(lambda data: (OP_TEXT, data))),
        (1, st.binary(max_size=24).map(lambda data: (OP_BINARY, data))),
    )
    return small, big


CONTROLS = st.builds(F, st.sampled_from([OP_PING, OP_PONG]), st.binary(max_size=125))


@st.composite
def messages(draw: st.DrawFn, payload: Payload) -> list[F]:
    """A message in one frame, or fragmented with control frames between the fragments."""
    opcode, data = draw(payload)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    if not cuts:
        return [F(opcode, data)]
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    frames = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        frames.append(F(opcode if index == 0 else OP_CONT, piece, fin=last))
        if not last:
            frames += draw(st.lists(CONTROLS, max_size=2))
    return frames


def violations(max_size: int) -> st.SearchStrategy[list[F]]:
    """Frames RFC 6455 forbids a client to send (or in that place)."""
    started = st.just(F(OP_TEXT, b'{"type": ', fin=False))  # a fragmented message begins
    reserved = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]
    opcode = st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE])
    huge = st.sampled_from([max_size + 1, 2**31, 2**63 - 1, 2**64 - 1])
    odd_close = st.one_of(
        st.binary(min_size=1, max_size=1),
        st.sampled_from([0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]).map(
            close_payload
        ),
        invalid_utf8().map(lambda reason: close_payload(1000, reason[:120])),
        st.just(close_payload(1000, b"r" * 124)),  # 126 bytes: too long for a control frame
    )
    return st.one_of(
        st.builds(lambda o, r: [F(o, b"{}", rsv=r)], opcode, st.integers(1, 7)),
        st.builds(lambda o, p: [F(o, p)], st.sampled_from(reserved), st.binary(max_size=8)),
        st.builds(lambda o: [F(o, b'{"type": "ping"}', masked=False)], opcode),
        st.builds(lambda o: [F(o, b"", fin=False)], st.sampled_from(sorted(CONTROL_OPCODES))),
        st.builds(lambda p: [F(OP_PING, p)], st.binary(min_size=126, max_size=130)),
        st.builds(lambda fin: [F(OP_CONT, b"{}", fin=fin)], st.booleans()),
        st.builds(
            lambda first, o: [first, F(o, b"{}")], started, st.sampled_from([OP_TEXT, OP_BINARY])
        ),
        st.builds(lambda first: [first, F(OP_CLOSE, close_payload(1000))], started),
        st.builds(lambda size: [F(OP_TEXT, declared=size)], huge),
        st.builds(
            lambda size: [F(OP_TEXT, b"x" * 10, fin=False), F(OP_CONT, declared=size)],
            st.sampled_from([max_size - 9, max_size]),
        ),
        odd_close.map(lambda payload: [F(OP_CLOSE, payload)]),
    )


def frame_cases(small: Payload, big: Payload, max_size: int) -> st.SearchStrategy[FrameCase]:
    message = messages(small)
    unit = weighted((12, message), (1, messages(big)), (2, CONTROLS.map(lambda f: [f])))
    broken = violations(max_size)
    valid_close = st.builds(
        lambda code, reason: F(OP_CLOSE, close_payload(code, reason.encode()[:100])),
        st.sampled_from([1000, 1001, 1003, 1008, 3000, 4000, 4999]),
        SHORT_TEXT,
    )
    tail = weighted((4, valid_close), (1, st.just(F(OP_CLOSE))), (1, st.none()))

    @st.composite
    def case(draw: st.DrawFn) -> FrameCase:
        units = draw(st.lists(unit, min_size=1, max_size=5))
        # a quarter of the sequences break a rule, mostly late (Hypothesis favours 0)
        if draw(st.integers(0, 3)) == 3:
            units.insert(len(units) - draw(st.integers(0, len(units))), draw(broken))
        body = tuple(frame for group in units for frame in group)
        return FrameCase(body, draw(tail), tuple(draw(st.lists(st.integers(1, 40), max_size=6))))

    return case()


@st.composite
def mutated(draw: st.DrawFn, payload: Payload) -> BytesCase:
    """Valid frames (the first 4 KiB of them) with up to four bytes changed."""
    groups = draw(st.lists(messages(payload), min_size=1, max_size=3))
    stream = bytearray(b"".join(f.encode() for group in groups for f in group)[:4096])
    changes = st.tuples(st.integers(0, len(stream) - 1), st.integers(0, 255))
    for position, value in draw(st.lists(changes, max_size=4)):
        stream[position] = value
    return BytesCase(bytes(stream), "mutated")


def url_cases(endpoint: Endpoint, task_id: str) -> st.SearchStrategy[UrlCase]:
    """The endpoint's path with another id (tasks, agents) and random query parameters."""
    value = st.one_of(
        st.integers(-5, 2**70).map(str),
        st.sampled_from(["0", "1", "true", "", "nan", "1e3", " 1"]),
        st.text(max_size=12),
        st.text(min_size=60, max_size=600),
    )
    names = (
        ["name", "kind"] if endpoint.name == "agent" else ["since", "epoch", "client_id", "batch"]
    )
    query = st.dictionaries(st.sampled_from(names) | st.text(max_size=6), value, max_size=3)
    if endpoint.name == "task":
        target = st.sampled_from([task_id, task_id, "task_nope"]) | st.text(max_size=12)
        prefix = "/ws/tasks/"
    elif endpoint.name == "agent":
        target = st.from_regex(r"agent_fz[0-9a-z]{0,6}", fullmatch=True) | st.text(max_size=12)
        prefix = "/ws/agents/"
    else:
        target, prefix = st.just(""), "/ws/board"

    @st.composite
    def case(draw: st.DrawFn) -> UrlCase:
        where = draw(target.filter(lambda where: where != CONTROL_AGENT))
        params = draw(query)
        search = "?" + urlencode(params, quote_via=quote) if params else ""
        return UrlCase(prefix + quote(where, safe="") + search)

    return case()


def cases(
    endpoint: Endpoint, *, task_id: str, sandbox_task: str, max_size: int
) -> st.SearchStrategy[Case]:
    small, big = payloads(endpoint, sandbox_task)
    kinds: dict[str, st.SearchStrategy[Case]] = {
        "frames": frame_cases(small, big, max_size),
        "bytes": st.builds(BytesCase, st.binary(max_size=512), st.just("bytes")),
        "mutated": mutated(small),
        "url": url_cases(endpoint, task_id),
    }
    # mostly frame sequences (the ones with a single right answer)
    return weighted(
        (6, kinds["frames"]), (1, kinds["bytes"]), (1, kinds["mutated"]), (2, kinds["url"])
    )


def regressions(endpoint: Endpoint, sandbox_task: str) -> list[Case]:
    """Cases every run includes, whatever Hypothesis comes up with: what the fuzzing found
    once (each fixed since) and the edges of the limits."""
    limit = endpoint.app_limit
    ping = b'{"type": "ping", "timestamp": 1}'
    bye = F(OP_CLOSE, close_payload(1000, b"bye"))
    found: list[Case] = [
        # over the limit in bytes, not in characters: 1009 (it used to be answered)
        FrameCase((F(OP_TEXT, "\u00e9".encode() * (limit // 2 + 1)),), bye, ()),
        # exactly at the limit: answered
        FrameCase(
            (F(OP_TEXT, b'{"type": "ping", "pad": "' + b"x" * (limit - 27) + b'"}'),), bye, ()
        ),
        # a ping in the middle of a fragmented message, an unsolicited pong, split reads
        FrameCase(
            (
                F(OP_TEXT, ping[:5], fin=False),
                F(OP_PING, b"mid"),
                F(OP_PONG, b"unsolicited"),
                F(OP_CONT, ping[5:9], fin=False),
                F(OP_CONT, ping[9:]),
            ),
            bye,
            (1, 3, 7, 2),
        ),
        FrameCase((F(OP_TEXT, ping, rsv=4),), None, ()),
        FrameCase((F(OP_TEXT, ping, masked=False),), None, ()),
        FrameCase((F(OP_CLOSE, close_payload(1005)),), None, ()),
        FrameCase((F(OP_TEXT, declared=2**63 - 1),), None, ()),
    ]
    if endpoint.name == "task":
        found += [
            UrlCase("/ws/tasks/" + "%C3%A9" * 100),  # a 4404 whose reason is over 123 bytes
            UrlCase("/ws/tasks/task_%00x"),  # an id PostgreSQL cannot look up
        ]
    if endpoint.name == "agent":
        nul = {"event_type": "custom", "data": {"name": "nul", "value": "a\u0000b"}}
        batch = {"type": "publish", "batch_id": "nul", "task_id": sandbox_task, "events": [nul]}
        found += [
            UrlCase("/ws/agents/agent_fzkind?kind=" + "k" * 65),
            UrlCase("/ws/agents/agent_fzname?name=%20"),
            UrlCase("/ws/agents/agent_fznul?name=a%00b"),
            FrameCase((F(OP_TEXT, json.dumps(batch).encode()),), bye, ()),  # PostgreSQL: a nack
        ]
    return found


# --- running a case ------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the server sent on a fuzzed connection."""

    replies: list[Any] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    close: ServerFrame | None = None
    problems: list[str] = field(default_factory=list)
    #: the client sent its close frame (or half-closed): it answers no close of the server's
    client_closed: bool = False


class Fuzz:
    """One server, its controls, and the cases run against it."""

    def __init__(self, server: LiveServer, http: httpx.Client, log: ServerLog) -> None:
        self.server = server
        self.http = http
        self.log = log
        self.task_id = new_task(http, "Fuzzed")
        self.sandbox_task = new_task(http, "Sandbox of the fuzzed agents")
        self.controls = Controls(server, http, self.task_id)
        settings_ = server.settings
        self.max_size = max(settings_.max_body_bytes, settings_.ws_max_message_bytes) + 4096
        self.endpoints = {
            "task": Endpoint("task", f"/ws/tasks/{self.task_id}", settings_.ws_max_message_bytes),
            "board": Endpoint("board", "/ws/board", settings_.ws_max_message_bytes),
            "agent": Endpoint("agent", f"/ws/agents/{FUZZ_AGENT}", settings_.max_body_bytes),
        }
        self.counts: Counter[tuple[str, str]] = Counter()
        self.endings: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()

    def cases(self, endpoint: Endpoint) -> st.SearchStrategy[Case]:
        return cases(
            endpoint, task_id=self.task_id, sandbox_task=self.sandbox_task, max_size=self.max_size
        )

    def run(self, endpoint: Endpoint, case: Case) -> None:
        mark = len(self.log.records)
        if isinstance(case, FrameCase):
            self._frames(endpoint, case)
        elif isinstance(case, BytesCase):
            self._bytes(endpoint, case)
        else:
            self._url(endpoint, case)
        assert self.http.get("/health").status_code == 200
        wait_until(self._settled, message="the fuzzed connection to be gone from the server")
        problems = self.log.problems(mark)
        assert not problems, f"the server logged errors: {problems}"
        self.counts[(endpoint.name, case.kind)] += 1
        if sum(self.counts.values()) % CONTROL_EVERY == 0:
            self.controls.check()

    def _settled(self) -> bool:
        """Only the control connections are left (none of the fuzzed ones hangs on)."""
        status = self.http.get("/api/v1/websocket/status").json()
        try:
            agents = self.server.app.state.services.hub.connected()  # type: ignore[union-attr]
        except RuntimeError:  # changed while read from this thread: look again
            return False
        return bool(status["connections_total"] == 2 and agents == [CONTROL_AGENT])

    def _open(self, endpoint: Endpoint, path: str | None = None) -> RawWebSocket:
        ws = RawWebSocket(self.server.port, path or endpoint.path, timeout=CASE_WAIT)
        assert ws.upgrade() == 101, ws.response_head
        greeting = json.loads(self._next(ws, time.monotonic() + CASE_WAIT, Seen()).payload)  # type: ignore[union-attr]
        expected = "welcome" if endpoint.name == "agent" else "connection_established"
        assert greeting.get("type", greeting.get("event_type")) == expected, greeting
        return ws

    def _next(self, ws: RawWebSocket, deadline: float, seen: Seen) -> ServerFrame | None:
        frame = ws.read_frame(deadline)
        if frame is not None:
            seen.problems += frame.problems()
        return frame

    def _frames(self, endpoint: Endpoint, case: FrameCase) -> None:
        plan = predict(
            list(case.body), case.tail, app_limit=endpoint.app_limit, max_size=self.max_size
        )
        seen = Seen()
        with self._open(endpoint) as ws:
            deadline = time.monotonic() + CASE_WAIT
            body, tail = plan.stream[: plan.body_size], plan.stream[plan.body_size :]
            if plan.clean:
                _send_in_chunks(ws, body, case.chunks)
                self.controls.tick()
                while len(seen.replies) < plan.messages or len(seen.pongs) < len(plan.pings):
                    if self._read(endpoint, ws, deadline, seen) is None:
                        raise AssertionError(f"closed before answering: {seen.close!r} {seen}")
                ws.send(tail)
            else:
                _send_in_chunks(ws, plan.stream, case.chunks)
                self.controls.tick()
            if plan.half_close:
                ws.shutdown_write()
            seen.client_closed = plan.half_close or bool(tail)
            while self._read(endpoint, ws, deadline, seen) is not None:
                if len(seen.replies) > plan.messages:  # fail now, not at the deadline
                    raise AssertionError(f"{plan.messages} messages, answered: {seen.replies}")
        assert not seen.problems, seen.problems
        if plan.clean:
            assert len(seen.replies) == plan.messages, (plan.messages, seen.replies)
        else:
            assert len(seen.replies) <= plan.messages, (plan.messages, seen.replies)
        k = len(seen.pongs)
        assert plan.pings_sure <= k <= len(plan.pings) and seen.pongs == plan.pings[:k], (
            seen.pongs,
            plan.pings,
        )
        assert _ending(seen) in plan.endings or (
            seen.close is not None and ("echo", seen.close.payload) in plan.endings
        ), (_ending(seen), plan.endings)
        assert _gapless(seen.seqs), seen.seqs
        self.endings[str(_ending(seen))] += 1

    def _bytes(self, endpoint: Endpoint, case: BytesCase) -> None:
        seen = Seen()
        with self._open(endpoint) as ws:
            deadline = time.monotonic() + CASE_WAIT
            ws.send(case.data)
            self.controls.tick()
            ws.shutdown_write()
            seen.client_closed = True
            while self._read(endpoint, ws, deadline, seen) is not None:
                pass
        assert not seen.problems, seen.problems
        if seen.close is not None and seen.close.close_code is not None:
            code = seen.close.close_code
            assert code in SENSIBLE_CODES or (rfc_close_code(code) and code != 1011), code
        self.endings[str(_ending(seen))] += 1

    def _url(self, endpoint: Endpoint, case: UrlCase) -> None:
        seen = Seen()
        ws = RawWebSocket(self.server.port, case.path, timeout=CASE_WAIT)
        with ws:
            status = ws.upgrade()
            if status != 101:
                assert status in {400, 403, 404}, ws.response_head
                self.endings[f"http {status}"] += 1
                return
            deadline = time.monotonic() + CASE_WAIT
            probe = f"probe-{sum(self.counts.values())}"
            ws.send(
                encode_frame(OP_TEXT, json.dumps({"type": "ping", "timestamp": probe}).encode())
            )
            answered = False  # the probe's pong came: the connection is open and answers
            while self._read(endpoint, ws, deadline, seen, greeting=True) is not None:
                if not answered and any(_pong_for(reply, probe) for reply in seen.replies):
                    answered = seen.client_closed = True
                    ws.send(encode_frame(OP_CLOSE, close_payload(1000)))
        assert not seen.problems, seen.problems
        assert seen.close is not None, "no close frame"
        code = seen.close.close_code
        if answered:
            assert code == 1000, code
        else:
            assert code in SENSIBLE_CODES - {1000, 1002, 1007, 1009}, (code, seen.close)
        assert _gapless(seen.seqs), seen.seqs
        self.endings[f"url {code}"] += 1

    def _read(
        self,
        endpoint: Endpoint,
        ws: RawWebSocket,
        deadline: float,
        seen: Seen,
        *,
        greeting: bool = False,
    ) -> ServerFrame | None:
        """Read one frame and file it in ``seen``; answer the server's close with ours."""
        frame = self._next(ws, deadline, seen)
        if frame is None:
            if ws.reset and seen.close is None:
                seen.problems.append("the connection was reset before a close frame")
            return None
        if frame.opcode == OP_CLOSE:
            if seen.close is None:
                seen.close = frame
                if not seen.client_closed:  # the closing handshake (RFC 6455 §5.5.1)
                    ws.send(encode_frame(OP_CLOSE, frame.payload[:2]))
                    seen.client_closed = True
            else:
                seen.problems.append("a second close frame")
        elif frame.opcode == OP_PONG:  # may follow the close: it is no data (RFC 6455 §5.5.1)
            seen.pongs.append(frame.payload)
        elif seen.close is not None:
            seen.problems.append(f"a frame after the close: {frame!r}")
        elif frame.opcode == OP_TEXT:
            try:
                message = json.loads(frame.payload)
            except ValueError:
                seen.problems.append(f"a text frame that is not JSON: {frame.payload[:80]!r}")
                return frame
            for envelope in _envelopes(message):
                self._file(endpoint, envelope, seen, greeting)
        else:
            seen.problems.append(f"an unexpected frame: {frame!r}")
        return frame

    def _file(self, endpoint: Endpoint, message: Any, seen: Seen, greeting: bool) -> None:
        if not isinstance(message, dict):
            seen.problems.append(f"not an object: {message!r}")
            return
        if endpoint.name == "agent":
            kind = message.get("type")
            if kind == "welcome" and greeting:
                return
            if kind in {"ack", "nack", "error", "pong", "heartbeat"}:
                seen.replies.append(message)
                self.answers[f"{kind} {message.get('status', message.get('code', ''))}"] += 1
                if kind == "nack" and not 400 <= message.get("status", 0) < 500:
                    seen.problems.append(f"a nack that blames the server: {message}")
                if kind == "error" and message.get("code") not in {"invalid_json", "unknown_type"}:
                    seen.problems.append(f"an unexpected error: {message}")
            else:
                seen.problems.append(f"an unexpected frame for an agent: {message}")
            return
        kind = message.get("event_type")
        if message.get("seq") is not None:
            if endpoint.name == "task":
                seen.seqs.append(message["seq"])
        elif kind in {"error", "pong", "heartbeat"}:
            code = message.get("data", {}).get("code")
            if greeting and code in {"bad_query", "cursor_void"}:
                return  # refused at the start (then closed with 1008 or 4409)
            seen.replies.append(message)
            self.answers[f"{kind} {code or ''}"] += 1
            if kind == "error" and code not in {"invalid_json", "unknown_type"}:
                seen.problems.append(f"an unexpected error: {message}")
        elif greeting and kind in {"connection_established", "gap", "personal_message"}:
            return
        elif endpoint.name != "board":
            seen.problems.append(f"an unexpected event: {message}")


def _pong_for(reply: Any, probe: str) -> bool:
    if reply.get("type") == "pong":
        return bool(reply.get("client_timestamp") == probe)
    return bool(
        reply.get("event_type") == "pong" and reply["data"].get("client_timestamp") == probe
    )


def _gapless(seqs: list[int]) -> bool:
    return not seqs or seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def _ending(seen: Seen) -> Ending:
    if seen.close is None:
        return ("none", None)
    code = seen.close.close_code
    return ("echo", b"") if code is None else ("code", code)


def _send_in_chunks(ws: RawWebSocket, data: bytes, chunks: tuple[int, ...]) -> None:
    """Write ``data`` in pieces of the sizes in ``chunks`` (then the rest at once)."""
    offset = 0
    for size in chunks:
        if offset >= len(data):
            break
        ws.send(data[offset : offset + size])
        offset += size
    ws.send(data[offset:])


# --- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzz]:
    """A server (no keepalive pings, no heartbeats: every frame it sends is an answer) with the
    control connections, on each backend; fails at the end if the controls missed anything."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
        empty_database(url)
    server = LiveServer(Settings(database_url=url, heartbeat_interval=3600), nodelay=True)
    server.start()
    log = ServerLog()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(log)
    try:
        with httpx.Client(base_url=server.url, timeout=CASE_WAIT) as http:
            fuzz = Fuzz(server, http, log)
            try:
                yield fuzz
            finally:
                fuzz.controls.close()
    finally:
        for logger in loggers:
            logger.removeHandler(log)
        server.stop()


@pytest.mark.parametrize("name", ["task", "board", "agent"])
def test_fuzzed_socket_leaves_the_server_and_the_others_well(fuzz: Fuzz, name: str) -> None:
    """CASES derandomized cases against one endpoint; each is checked as it ends (see the
    module docstring), the control connections every CONTROL_EVERY cases and at the end."""
    endpoint = fuzz.endpoints[name]

    @settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
        print_blob=False,
    )
    @given(case=fuzz.cases(endpoint))
    def run(case: Case) -> None:
        fuzz.run(endpoint, case)

    for case in regressions(endpoint, fuzz.sandbox_task):
        run = example(case=case)(run)

    before = fuzz.controls.checks
    run()
    fuzz.controls.check()
    assert fuzz.controls.checks > before
    counts = {kind: n for (where, kind), n in sorted(fuzz.counts.items()) if where == name}
    print(f"{name}: {sum(counts.values())} cases {counts}")
    print(f"  endings {dict(fuzz.endings)}\n  answers {dict(fuzz.answers)}")
    fuzz.endings.clear()
    fuzz.answers.clear()
    events = fuzz.http.get(f"/api/v1/tasks/{fuzz.task_id}/events", params={"limit": 10_000})
    logged = [e["seq"] for e in events.json()["events"]]
    assert logged == list(range(1, len(logged) + 1))
    assert fuzz.controls.seen[-1] == logged[-1]  # the subscriber has all of the log
