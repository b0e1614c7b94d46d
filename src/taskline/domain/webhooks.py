"""Outgoing webhooks: what an admin configures, what a delivery is, and the pure rules of
sending one (which events a webhook takes, the body in each format, the signature, the
backoff). No I/O: :mod:`taskline.service.webhooks` sends, :mod:`taskline.store.webhooks`
stores.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): each request carries
``webhook-id`` (the delivery's id, the same on every attempt: receivers dedupe by it),
``webhook-timestamp`` (Unix seconds of the attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed by the secret's bytes: a
secret is ``whsec_`` and the base64 of 24 to 64 random bytes).
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool

__all__ = [
    "SECRET_PREFIX",
    "TEST_EVENT",
    "Delivery",
    "DeliveryStatus",
    "EventPattern",
    "Webhook",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookFormat",
    "WebhookPatch",
    "backoff",
    "event_names",
    "matches",
    "new_secret",
    "render",
    "secret_key",
    "sign",
    "summary",
]

SECRET_PREFIX = "whsec_"
#: The type of the deliveries ``POST /webhooks/{id}/test`` makes (never an event's type).
TEST_EVENT = "webhook.test"

WebhookFormat = Literal["standard", "slack", "discord"]
#: ``pending`` (waiting for its next attempt), ``sending`` (claimed by a sender until
#: ``next_attempt_at``: past it, the attempt is taken as lost and made again), ``delivered``
#: (a 2xx answer), ``failed`` (gave up after the last attempt).
DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]

#: An event type (``task_completed``, ``request.opened``), a prefix ending in ``*``
#: (``task_*``, ``request.*``), or ``*`` (everything). Types are data: a pattern may name a
#: type this server does not have yet.
EventPattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        pattern=r"^(\*|[a-z][a-z0-9_.]*\*?)$",
        examples=["task_completed", "request.*", "lease.expired"],
    ),
]
#: ``whsec_`` and padded base64 of 24 to 65 bytes.
_SECRET_PATTERN = (
    rf"^{SECRET_PREFIX}(?:[A-Za-z0-9+/]{{4}}){{8,21}}(?:[A-Za-z0-9+/]{{2}}==|[A-Za-z0-9+/]{{3}}=)?$"
)
_SECRET = Annotated[
    str,
    Field(
        pattern=_SECRET_PATTERN,
        description="whsec_ and the base64 of at least 24 bytes (generated when absent: 32 "
        "random bytes).",
    ),
]
#: http(s), a host name or IPv4 address (no user info), an optional port, then anything
#: without white space.
_URL_PATTERN = r"^https?://[A-Za-z0-9._~%-]+(?::[0-9]{1,5})?(?:[/?#]\S*)?$"
_URL = Annotated[
    str,
    Field(
        max_length=2000,
        pattern=_URL_PATTERN,
        description="Where deliveries are POSTed (http or https).",
        examples=["https://hooks.example.com/taskline"],
    ),
]
_EVENTS = Annotated[
    list[EventPattern],
    Field(
        min_length=1,
        max_length=50,
        description="Event types or patterns the webhook takes (task_completed, request.*, "
        "lease.expired: a task_updated whose lease expired; * for all).",
    ),
]
_DESCRIPTION = Annotated[str, Field(max_length=500)]


class WebhookCreate(BaseModel):
    """Body of ``POST /webhooks``."""

    model_config = ConfigDict(extra="forbid")

    url: _URL
    secret: _SECRET | None = None
    events: _EVENTS = Field(default_factory=lambda: ["*"])
    format: WebhookFormat = Field(
        default="standard",
        description="standard: {type, timestamp, data}; slack: {text}; discord: {content}.",
    )
    enabled: StrictBool = True
    description: _DESCRIPTION = ""


class WebhookPatch(BaseModel):
    """Body of ``PATCH /webhooks/{id}``: the members given change (the secret cannot)."""

    model_config = ConfigDict(extra="forbid")

    url: _URL | None = None
    events: _EVENTS | None = None
    format: WebhookFormat | None = None
    enabled: StrictBool | None = None
    description: _DESCRIPTION | None = None

    def changes(self) -> dict[str, Any]:
        """The members given, except nulls (which change nothing)."""
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}


class Webhook(BaseModel):
    """A configured webhook (its secret is shown only when it is created)."""

    id: str
    url: str
    events: list[str]
    format: WebhookFormat
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    held_until: datetime | None = Field(
        default=None,
        description="After a failed attempt, until its retry: the webhook's other deliveries "
        "wait until then too (null: none failed since the last success).",
    )


class WebhookCreated(Webhook):
    """The answer to a creation: the webhook and its secret, shown this once."""

    secret: str


class Delivery(BaseModel):
    """One message to one webhook: an event (or a test), with its attempts so far."""

    id: str = Field(description="Also the webhook-id header: the same on every attempt.")
    webhook_id: str
    event_id: str | None = Field(description="The event delivered (null: a test delivery).")
    task_id: str | None
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (pending), or when a claimed one is taken "
        "as lost (sending); null once delivered or failed."
    )
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    response_status: int | None = Field(description="The last attempt's HTTP status.")
    error: str | None = Field(description="Why the last attempt failed.")
    created_at: datetime


# --- which events a webhook takes ------------------------------------------------------------


def event_names(event_type: str, data: dict[str, Any]) -> tuple[str, ...]:
    """The names an event answers to: its type, and for a lease change (a ``task_updated``
    with a ``lease`` member) also ``lease.<action>`` (``lease.expired``, ``lease.claimed``)."""
    lease = data.get("lease") if event_type == "task_updated" else None
    if isinstance(lease, dict) and isinstance(lease.get("action"), str):
        return (event_type, f"lease.{lease['action']}")
    return (event_type,)


def matches(patterns: list[str], names: tuple[str, ...]) -> bool:
    """True when one of ``patterns`` (see :data:`EventPattern`) takes one of ``names``."""
    for pattern in patterns:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            if any(name.startswith(prefix) for name in names):
                return True
        elif pattern in names:
            return True
    return False


# --- what is sent ----------------------------------------------------------------------------


def summary(message: dict[str, Any]) -> str:
    """One line for people (the Slack ``text``, the Discord ``content``) from a standard
    message ``{type, timestamp, data}`` whose data is an event's envelope."""
    kind = str(message.get("type", "event"))
    data = message.get("data")
    envelope = data if isinstance(data, dict) else {}
    if kind == TEST_EVENT:
        return f"Taskline: test delivery of webhook {envelope.get('webhook_id', '')}".strip()
    inner = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
    assert isinstance(inner, dict)
    task = inner.get("task") if isinstance(inner.get("task"), dict) else None
    title = task.get("title") if task else None
    where = f"task {envelope.get('task_id')}" + (f" ({title})" if isinstance(title, str) else "")
    lease = inner.get("lease") if isinstance(inner.get("lease"), dict) else None
    if lease is not None and kind == "task_updated":
        kind = f"lease {lease.get('action')} ({lease.get('agent_id')})"
    detail = next(
        (
            inner[key]
            for key in ("question", "reason", "error", "message")
            if isinstance(inner.get(key), str) and inner[key]
        ),
        None,
    )
    line = f"Taskline: {kind} on {where}" + (f": {detail}" if detail else "")
    return line if len(line) <= 300 else line[:299] + "…"


def render(format: WebhookFormat, message: dict[str, Any]) -> bytes:
    """The body of a delivery: the standard message itself, or Slack's ``{"text"}`` /
    Discord's ``{"content"}`` with its :func:`summary`. The same bytes on every attempt."""
    if format == "slack":
        return orjson.dumps({"text": summary(message)})
    if format == "discord":
        return orjson.dumps({"content": summary(message)})
    return orjson.dumps(message)


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret (its base64 part, decoded).

    Raises:
        ValueError: not ``whsec_`` and base64.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX} and base64") from None


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256 of
    ``{message_id}.{timestamp}.{body}``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def backoff(attempt: int, *, base: float, maximum: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, …): ``base`` doubled
    each time, at most ``maximum``."""
    return float(min(maximum, base * 2 ** max(0, attempt - 1)))
