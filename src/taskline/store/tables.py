"""SQLAlchemy table definitions. Schema changes go through Alembic migrations in ``migrations/``.

Timestamps are stored as naive UTC (SQLite has no time zones) and come back timezone-aware.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import JSON

__all__ = [
    "AGENTS",
    "CURSORS",
    "DELIVERIES",
    "EVENTS",
    "REQUESTS",
    "SECTIONS",
    "SUBTASKS",
    "TAGS",
    "TASKS",
    "TASK_LOGS",
    "WEBHOOKS",
    "AgentRow",
    "Base",
    "CredentialRow",
    "EventRow",
    "LogMetaRow",
    "MessageRow",
    "RequestRow",
    "SectionRow",
    "SubtaskRow",
    "TagRow",
    "TaskLogRow",
    "TaskRow",
    "UTCDateTime",
    "UserRow",
    "WebhookCursorRow",
    "WebhookDeliveryRow",
    "WebhookRow",
    "lease_document",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime stored as naive UTC on every backend."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def lease_document(
    agent_id: str | None, token: int, expires_at: datetime | None
) -> dict[str, Any] | None:
    """The ``lease`` member of a task document, from its lease columns."""
    if agent_id is None:
        return None
    return {"agent_id": agent_id, "token": token, "expires_at": expires_at}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # No foreign key: tasks already reference agents, and a cycle would complicate deletes.
    # Deleting a task clears this column in the repository.
    current_task_id: Mapped[str | None] = mapped_column(String(80))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(8))
    progress: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    assigned_agent_id: Mapped[str | None] = mapped_column(
        String(80), ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    result: Mapped[Any] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: bumped by every committed change to the task's document (its row, tags, sections,
    #: subtasks): the ``ETag`` of the REST API, compared by ``If-Match`` (see TaskStore.claim)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    # The lease (see taskline.domain.leases): the agent holding the task (None: nobody), the
    # fencing token (bumped by every claim, never reused), when it expires (after it ended:
    # when it did), how long each renewal extends it, whether the task was assigned to the
    # holder before its claim (it stays assigned when the lease ends), and the agent whose
    # lease was last lost (expired, or taken away): its late writes are refused.
    lease_agent_id: Mapped[str | None] = mapped_column(String(80))
    lease_token: Mapped[int] = mapped_column(Integer, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    lease_seconds: Mapped[float | None] = mapped_column(Float)
    lease_assigned: Mapped[bool] = mapped_column(Boolean, server_default=false())
    lease_lost_by: Mapped[str | None] = mapped_column(String(80))
    #: true while the task has an open request (see taskline.domain.requests), kept in the
    #: transaction that opens, answers, expires or cancels one: the board reads it with the
    #: row, never per task
    needs_input: Mapped[bool] = mapped_column(Boolean, server_default=false(), index=True)

    sections: Mapped[list["SectionRow"]] = relationship(
        order_by="SectionRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )
    tag_rows: Mapped[list["TagRow"]] = relationship(
        order_by="TagRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]

    @property
    def lease(self) -> dict[str, Any] | None:
        """The live lease as the task document shows it (None: nobody holds the task)."""
        return lease_document(self.lease_agent_id, self.lease_token, self.lease_expires_at)


class TagRow(Base):
    __tablename__ = "task_tags"

    task_id: Mapped[str] = mapped_column(
        String(80), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_task_tags_tag", "tag"),)


class SectionRow(Base):
    __tablename__ = "sections"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    task_id: Mapped[str] = mapped_column(
        String(80), ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(500))
    position: Mapped[int] = mapped_column(Integer)

    subtasks: Mapped[list["SubtaskRow"]] = relationship(
        order_by="SubtaskRow.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )


class SubtaskRow(Base):
    __tablename__ = "subtasks"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    section_id: Mapped[str] = mapped_column(
        String(80), ForeignKey("sections.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(500))
    done: Mapped[bool] = mapped_column(Boolean)
    notes: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(80), ForeignKey("tasks.id", ondelete="CASCADE"))
    author_kind: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # who posted it, as recorded on events (person:ana, agent:agent_x); None before 0004
    actor: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (Index("ix_messages_task_id_created_at", "task_id", "created_at"),)


class RequestRow(Base):
    """A request an agent made of a person (see taskline.domain.requests)."""

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(80), ForeignKey("tasks.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(Text)
    response_schema: Mapped[Any] = mapped_column(JsonType, nullable=True)
    choices: Mapped[Any] = mapped_column(JsonType, nullable=True)
    action: Mapped[Any] = mapped_column(JsonType, nullable=True)
    tool_call_id: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(80))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(120))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    answer: Mapped[Any] = mapped_column(JsonType, nullable=True)
    arguments: Mapped[Any] = mapped_column(JsonType, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # a task's requests, its open ones (needs_input), the inbox (open, oldest first)
        Index("ix_requests_task_id_status", "task_id", "status"),
        Index("ix_requests_status_created_at", "status", "created_at"),
        # the expiry sweeper: open requests by when they expire
        Index("ix_requests_status_expires_at", "status", "expires_at"),
    )


class TaskLogRow(Base):
    """The head of a task's event log. Kept when the task is deleted, so seqs never restart."""

    __tablename__ = "task_logs"

    task_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int] = mapped_column(Integer)  # first seq still retained (1 = everything)
    state: Mapped[Any] = mapped_column(JsonType, nullable=True)  # shared state document
    state_version: Mapped[int] = mapped_column(Integer)


class EventRow(Base):
    """One committed event. ``(task_id, seq)`` is unique and gapless per task."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[Any] = mapped_column(JsonType)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str | None] = mapped_column(String(200))
    #: who made it: ``kind:id`` or ``anonymous`` (see taskline.domain.actors); None before 0003
    actor: Mapped[str | None] = mapped_column(String(120))
    client_id: Mapped[str | None] = mapped_column(String(80))
    run_id: Mapped[str | None] = mapped_column(String(80))
    parent_run_id: Mapped[str | None] = mapped_column(String(80))
    agent_id: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (Index("ix_events_task_id_seq", "task_id", "seq", unique=True),)


class LogMetaRow(Base):
    """Facts about this database's log, such as its ``epoch`` (a stable random id)."""

    __tablename__ = "log_meta"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# The Core tables behind the rows, for the hot paths that write plain statements
# (creating tasks, appending events) instead of going through the ORM.
TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
TAGS: Table = TagRow.__table__  # type: ignore[assignment]
SECTIONS: Table = SectionRow.__table__  # type: ignore[assignment]
SUBTASKS: Table = SubtaskRow.__table__  # type: ignore[assignment]
AGENTS: Table = AgentRow.__table__  # type: ignore[assignment]
TASK_LOGS: Table = TaskLogRow.__table__  # type: ignore[assignment]
REQUESTS: Table = RequestRow.__table__  # type: ignore[assignment]
EVENTS: Table = EventRow.__table__  # type: ignore[assignment]


class UserRow(Base):
    """A person who signs in (the password is an argon2 hash; None: not set yet)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CredentialRow(Base):
    """A secret that stands for a principal, stored as its SHA-256: an API token, a browser
    session or a one-time sign-in link (``kind``). A person's credentials act with the
    person's current role; an agent's are bound to one agent id."""

    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(
        String(80), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookRow(Base):
    """An outgoing webhook (see :mod:`taskline.domain.webhooks`). The secret is kept as it
    is (the server signs with it); the API shows it only when the webhook is created."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[Any] = mapped_column(JsonType)  # list of event types or patterns
    format: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(120))
    #: after a failed attempt, until its retry: new deliveries wait until then too
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDeliveryRow(Base):
    """The outbox: one message to one webhook, at most one per (webhook, event). Its id is
    the ``webhook-id`` header of every attempt. ``next_attempt_at`` is when a ``pending``
    row is due, or when a ``sending`` row's claim runs out (its attempt is taken as lost)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(
        String(80), ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_id: Mapped[str | None] = mapped_column(String(80))  # None: a test delivery
    task_id: Mapped[str | None] = mapped_column(String(80))
    event_type: Mapped[str] = mapped_column(String(80))
    #: a test delivery's message; None for an event's (built from the event when sent)
    message: Mapped[Any] = mapped_column(JsonType, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_id_event_id", "webhook_id", "event_id", unique=True),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    )


class WebhookCursorRow(Base):
    """How far the webhook dispatcher has read each task's log (the last seq it turned
    into deliveries): per task, because only per-task seqs are commit-ordered."""

    __tablename__ = "webhook_cursors"

    task_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


WEBHOOKS: Table = WebhookRow.__table__  # type: ignore[assignment]
DELIVERIES: Table = WebhookDeliveryRow.__table__  # type: ignore[assignment]
CURSORS: Table = WebhookCursorRow.__table__  # type: ignore[assignment]
