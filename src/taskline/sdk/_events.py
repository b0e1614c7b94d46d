"""Building the events a run publishes: ids, attribution, and a check before queuing.

The server is the final judge of every event, but a batch is stored all or nothing, so one
malformed event would get the good events batched with it refused. :func:`build_event`
therefore checks an event against the shared schemas (``taskline.domain.events``) and refuses
it on the spot, before it is queued.
"""

import json
from datetime import UTC, datetime
from typing import Any

from taskline.domain.errors import InvalidInputError
from taskline.domain.events import (
    LOGGED_EVENTS,
    SERVER_ONLY_EVENTS,
    WebSocketEventType,
    validate_data,
)
from taskline.domain.ids import new_id
from taskline.sdk._errors import InvalidEvent
from taskline.sdk._http import jsonable

__all__ = ["BuiltEvent", "build_event", "event_type"]


class BuiltEvent:
    """An event ready for the wire: its id and its JSON text."""

    __slots__ = ("event_id", "text")

    def __init__(self, event_id: str, text: str) -> None:
        self.event_id = event_id
        self.text = text


def event_type(value: str | WebSocketEventType) -> WebSocketEventType:
    """Return ``value`` as an event type a publisher may log, or raise :class:`InvalidEvent`."""
    try:
        kind = WebSocketEventType(value)
    except ValueError:
        raise InvalidEvent(f"event_type: unknown type {value!r}", field="event_type") from None
    if kind not in LOGGED_EVENTS:
        raise InvalidEvent(
            f"event_type: {kind.value!r} is a connection message and cannot be logged",
            field="event_type",
        )
    if kind in SERVER_ONLY_EVENTS:
        raise InvalidEvent(
            f"event_type: {kind.value!r} is written by the server", field="event_type"
        )
    return kind


def build_event(
    kind: str | WebSocketEventType,
    data: dict[str, Any],
    *,
    run_id: str | None = None,
    agent_id: str | None = None,
    parent_run_id: str | None = None,
    max_bytes: int | None = None,
) -> BuiltEvent:
    """Check and encode one event with a fresh ``evt_`` id and the current time.

    The timestamp is taken now, on this machine's clock: an event buffered through an outage
    keeps the time it happened, not the time it reached the server.

    ``data`` may hold models, enums and datetimes (converted to JSON types); it is sent as
    given (the server adds its defaults), the check only proves the server will accept it.

    Raises:
        InvalidEvent: unknown or server-only type, data that fails the type's schema (naming
            the field), data that is not JSON, or an event larger than ``max_bytes``.
    """
    checked_type = event_type(kind)
    payload = jsonable(data)
    if not isinstance(payload, dict):
        raise InvalidEvent("data: must be a JSON object", field="data")
    try:
        validate_data(checked_type, dict(payload))
    except InvalidInputError as exc:
        raise InvalidEvent(exc.detail, field=exc.field) from None
    event_id = new_id("evt")
    event: dict[str, Any] = {
        "id": event_id,
        "event_type": checked_type.value,
        "data": payload,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    if run_id is not None:
        event["run_id"] = run_id
    if agent_id is not None:
        event["agent_id"] = agent_id
    if parent_run_id is not None:
        event["parent_run_id"] = parent_run_id
    try:
        # ASCII only (non-ASCII as \u escapes), so len(text) is the exact size in bytes that
        # batch sizing relies on.
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"data: not JSON: {exc}", field="data") from None
    if max_bytes is not None and len(text) > max_bytes:
        raise InvalidEvent(
            f"data: the event is {len(text)} bytes encoded; events are limited to "
            f"{max_bytes} bytes (DeliveryOptions.max_batch_bytes)",
            field="data",
        )
    return BuiltEvent(event_id, text)
