"""Connection messages: envelopes that are not in any log (``seq`` is None) and the one JSON
encoding every frame gets."""

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticSerializationError

from taskline.domain.events import WebSocketEventType, WebSocketMessage
from taskline.domain.ids import new_id
from taskline.domain.json_bounds import readable
from taskline.domain.models import Task, utc_now
from taskline.realtime.offline import QueuedMessages

__all__ = ["encode", "established", "gap_notices", "notice", "offline_notices"]

E = WebSocketEventType
logger = logging.getLogger("taskline.realtime")


def encode(message: WebSocketMessage) -> str:
    """The JSON text of an envelope, computed once per event and shared by all subscribers.

    Data stored before the bounds of :mod:`taskline.domain.json_bounds` that cannot be written
    (nested too deep for the encoder, a lone surrogate) has those parts replaced by a
    ``{"taskline_unreadable": …}`` marker, with a warning logged: the event is still sent.
    """
    try:
        return message.model_dump_json()
    except PydanticSerializationError:
        data, problems = readable(message.data)
        logger.warning(
            "event %s (task %s, seq %s) holds values no encoder writes: %s",
            message.id,
            message.task_id,
            message.seq,
            "; ".join(problems),
        )
        return message.model_copy(update={"data": data}).model_dump_json()


def notice(
    event_type: WebSocketEventType,
    data: dict[str, Any],
    *,
    task_id: str | None = None,
    client_id: str | None = None,
) -> WebSocketMessage:
    """A connection message (not from the log: ``seq`` is None)."""
    return WebSocketMessage(
        id=new_id("msg"),
        event_type=event_type,
        data=data,
        timestamp=utc_now(),
        task_id=task_id,
        client_id=client_id,
        source="server",
    )


def established(
    client_id: str,
    task_id: str | None,
    *,
    epoch: str,
    first_seq: int,
    last_seq: int,
    heartbeat_interval: float,
    stale_after: float,
) -> WebSocketMessage:
    """``connection_established``: who the client is and where the log stands."""
    data = {
        "client_id": client_id,
        "task_id": task_id,
        "epoch": epoch,
        "last_seq": last_seq if task_id else None,
        "first_seq": first_seq if task_id else None,
        "server_time": datetime.now(UTC).isoformat(),
        "heartbeat_interval": heartbeat_interval,
        "stale_after": stale_after,
    }
    return notice(E.CONNECTION_ESTABLISHED, data, task_id=task_id, client_id=client_id)


def gap_notices(
    client_id: str, task: Task, state: Any, version: int, *, since: int, first_seq: int
) -> list[WebSocketMessage]:
    """What a subscriber whose cursor was trimmed away gets first: ``gap``, then fresh
    snapshots of the task and of its shared state."""
    task_id = task.id
    return [
        notice(
            E.GAP,
            {"since": since, "first_available_seq": first_seq},
            task_id=task_id,
            client_id=client_id,
        ),
        notice(
            E.TASK_UPDATED,
            {"task": task.model_dump(mode="json"), "snapshot": True},
            task_id=task_id,
            client_id=client_id,
        ),
        notice(
            E.STATE_SNAPSHOT,
            {"snapshot": state, "version": version},
            task_id=task_id,
            client_id=client_id,
        ),
    ]


def offline_notices(
    client_id: str, queued: QueuedMessages, *, size: int, ttl: float
) -> list[WebSocketMessage | str]:
    """What a returning client gets of its offline queue: an expiry notice, or the queued
    frames and a notice of how many were dropped."""
    items: list[WebSocketMessage | str] = []
    if queued.expired:
        items.append(
            notice(
                E.QUEUE_EXPIRED,
                {
                    "message": "your queued personal messages expired while you were away",
                    "ttl_seconds": ttl,
                },
                client_id=client_id,
            )
        )
    items.extend(queued.frames)
    if queued.dropped:
        items.append(
            notice(
                E.QUEUE_OVERFLOW,
                {
                    "dropped": queued.dropped,
                    "kept": len(queued.frames),
                    "message": f"{queued.dropped} older personal messages were dropped "
                    f"while you were away (the queue keeps {size})",
                },
                client_id=client_id,
            )
        )
    return items
