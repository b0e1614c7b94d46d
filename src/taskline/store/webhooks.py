"""The statements of outgoing webhooks: the webhooks, the outbox of deliveries, and the
dispatcher's per-task cursors (see :mod:`taskline.service.webhooks` for how they are used).

Nothing is enqueued twice: a delivery is unique by ``(webhook_id, event_id)`` and inserted
with ``ON CONFLICT DO NOTHING``, in the transaction that moves the task's cursor past the
event. A sender claims due rows by moving them to ``sending`` with ``next_attempt_at`` at
the end of its claim (on PostgreSQL ``FOR UPDATE SKIP LOCKED``: concurrent senders take
different rows); every later change names the attempt it is about, so a sender whose claim
ran out (and whose row another sender took) changes nothing.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from taskline.domain.errors import NotFoundError
from taskline.domain.webhooks import Delivery, DeliveryStatus, Webhook
from taskline.store.tables import CURSORS, DELIVERIES, EVENTS, TASK_LOGS, WEBHOOKS

__all__ = ["Claimed", "Pending", "WebhookStore"]

_W = WEBHOOKS.c
_D = DELIVERIES.c
_DELIVERY_COLUMNS = [c for c in DELIVERIES.c if c.name != "message"]
#: Deliveries are sent while their webhook is enabled; test deliveries (no event) always.
_SENDABLE = or_(_W.enabled, _D.event_id.is_(None))


class Pending:
    """An event read from a task's log, for the dispatcher."""

    __slots__ = ("data", "event_type", "id", "seq", "task_id", "values")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.id: str = values["id"]
        self.task_id: str = values["task_id"]
        self.seq: int = values["seq"]
        self.event_type: str = values["event_type"]
        self.data: dict[str, Any] = values["data"] or {}


class Claimed:
    """A delivery a sender claimed: where, which attempt this is, and what to send: the test
    delivery's ``message``, or the columns of its ``event`` (None: no longer in the log)."""

    __slots__ = (
        "attempt",
        "event",
        "format",
        "held",
        "id",
        "message",
        "secret",
        "url",
        "webhook_id",
    )

    def __init__(self, row: Any) -> None:
        self.id: str = row.id
        self.webhook_id: str = row.webhook_id
        self.attempt: int = row.attempts
        self.message: dict[str, Any] | None = row.message
        self.url: str = row.url
        self.secret: str = row.secret
        self.format: Any = row.format
        self.held: bool = row.held_until is not None  #: the webhook is held back (a failure)
        mapping = row._mapping
        self.event: dict[str, Any] | None = (
            {c.name: mapping[f"event_{c.name}"] for c in EVENTS.c}
            if mapping["event_id_found"] is not None
            else None
        )


class WebhookStore:
    """Webhook operations inside one transaction (the caller owns the session)."""

    def __init__(self, session: AsyncSession, *, postgresql: bool = False) -> None:
        """``postgresql``: the database is PostgreSQL (``FOR UPDATE SKIP LOCKED``, its
        ``INSERT … ON CONFLICT``); else SQLite."""
        self.session = session
        self.postgresql = postgresql

    # --- webhooks -------------------------------------------------------------------------

    async def create(self, values: dict[str, Any]) -> Webhook:
        connection = await self.session.connection()
        await connection.execute(insert(WEBHOOKS), values)
        return await self.get(values["id"])

    async def get(self, webhook_id: str) -> Webhook:
        """Raises :class:`NotFoundError` for an unknown id."""
        connection = await self.session.connection()
        row = (await connection.execute(select(WEBHOOKS).where(_W.id == webhook_id))).first()
        if row is None:
            raise NotFoundError("webhook", webhook_id)
        return Webhook.model_validate(row._mapping)

    async def all(self) -> list[Webhook]:
        connection = await self.session.connection()
        rows = await connection.execute(select(WEBHOOKS).order_by(_W.created_at, _W.id))
        return [Webhook.model_validate(row._mapping) for row in rows]

    async def enabled(self) -> list[Webhook]:
        connection = await self.session.connection()
        rows = await connection.execute(select(WEBHOOKS).where(_W.enabled).order_by(_W.id))
        return [Webhook.model_validate(row._mapping) for row in rows]

    async def any_enabled(self) -> bool:
        connection = await self.session.connection()
        found = await connection.scalar(select(_W.id).where(_W.enabled).limit(1))
        return found is not None

    async def update(self, webhook_id: str, values: dict[str, Any]) -> Webhook:
        """Raises :class:`NotFoundError` for an unknown id."""
        connection = await self.session.connection()
        result = await connection.execute(
            update(WEBHOOKS).where(_W.id == webhook_id).values(**values)
        )
        if result.rowcount == 0:
            raise NotFoundError("webhook", webhook_id)
        return await self.get(webhook_id)

    async def delete(self, webhook_id: str) -> None:
        """Delete the webhook and its deliveries. Raises :class:`NotFoundError`."""
        connection = await self.session.connection()
        await connection.execute(delete(DELIVERIES).where(_D.webhook_id == webhook_id))
        result = await connection.execute(delete(WEBHOOKS).where(_W.id == webhook_id))
        if result.rowcount == 0:
            raise NotFoundError("webhook", webhook_id)

    # --- the dispatcher's cursors -----------------------------------------------------------

    async def fast_forward(self) -> None:
        """Move every task's cursor to the head of its log: events committed so far are not
        for webhooks (used when the first webhook is enabled)."""
        connection = await self.session.connection()
        await connection.execute(delete(CURSORS))
        await connection.execute(
            insert(CURSORS).from_select(
                ["task_id", "seq"], select(TASK_LOGS.c.task_id, TASK_LOGS.c.last_seq)
            )
        )

    async def behind(self, limit: int) -> list[tuple[str, int, int]]:
        """Up to ``limit`` tasks whose log has events past the cursor: (task id, cursor,
        head of its log)."""
        cursor = func.coalesce(CURSORS.c.seq, 0)
        statement = (
            select(TASK_LOGS.c.task_id, cursor.label("cursor"), TASK_LOGS.c.last_seq)
            .outerjoin(CURSORS, CURSORS.c.task_id == TASK_LOGS.c.task_id)
            .where(TASK_LOGS.c.last_seq > cursor)
            .order_by(TASK_LOGS.c.task_id)
            .limit(limit)
        )
        connection = await self.session.connection()
        return [(r.task_id, r.cursor, r.last_seq) for r in await connection.execute(statement)]

    async def events_after(self, task_id: str, seq: int, limit: int) -> list[Pending]:
        """The task's events with a seq past ``seq``, in seq order (``limit`` at most)."""
        statement = (
            select(EVENTS)
            .where(EVENTS.c.task_id == task_id, EVENTS.c.seq > seq)
            .order_by(EVENTS.c.seq)
            .limit(limit)
        )
        connection = await self.session.connection()
        return [Pending(dict(row._mapping)) for row in await connection.execute(statement)]

    async def move_cursors(self, cursors: dict[str, int]) -> None:
        """Set the cursors of these tasks (inserting those that have none yet)."""
        if not cursors:
            return
        rows = [{"task_id": t, "seq": s} for t, s in cursors.items()]
        statement = self._insert(CURSORS)
        statement = statement.on_conflict_do_update(
            index_elements=["task_id"], set_={"seq": statement.excluded.seq}
        )
        connection = await self.session.connection()
        await connection.execute(statement, rows)

    # --- the outbox ---------------------------------------------------------------------------

    async def enqueue(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert deliveries, skipping any (webhook, event) enqueued already."""
        if not rows:
            return
        statement = self._insert(DELIVERIES).on_conflict_do_nothing(
            index_elements=["webhook_id", "event_id"]
        )
        connection = await self.session.connection()
        await connection.execute(statement, list(rows))

    async def claim(self, *, now: datetime, until: datetime, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due deliveries (pending ones whose time came, sending ones
        whose claim ran out) of enabled webhooks, and test deliveries: ``sending`` until
        ``until``, one attempt more. The oldest due first."""
        due = (
            select(_D.id)
            .join(WEBHOOKS, _W.id == _D.webhook_id)
            .where(
                _D.status.in_(["pending", "sending"]),
                _D.next_attempt_at <= now,
                _SENDABLE,
            )
            .order_by(_D.next_attempt_at, _D.id)
            .limit(limit)
            .with_for_update(of=DELIVERIES, skip_locked=self.postgresql)
        )
        statement = (
            update(DELIVERIES)
            .where(_D.id.in_(due), _D.status.in_(["pending", "sending"]))
            .values(
                status="sending",
                attempts=_D.attempts + 1,
                next_attempt_at=until,
                last_attempt_at=now,
            )
            .returning(_D.id)
            .execution_options(synchronize_session=False)
        )
        connection = await self.session.connection()
        ids = [row.id for row in await connection.execute(statement)]
        if not ids:
            return []
        rows = await connection.execute(
            select(
                _D.id,
                _D.webhook_id,
                _D.attempts,
                _D.message,
                _W.url,
                _W.secret,
                _W.format,
                _W.held_until,
                EVENTS.c.id.label("event_id_found"),
                *(c.label(f"event_{c.name}") for c in EVENTS.c),
            )
            .join(WEBHOOKS, _W.id == _D.webhook_id)
            .outerjoin(EVENTS, EVENTS.c.id == _D.event_id)
            .where(_D.id.in_(ids))
            .order_by(_D.next_attempt_at, _D.id)
        )
        return [Claimed(row) for row in rows]

    async def finish(
        self,
        delivery_id: str,
        attempt: int,
        *,
        webhook_id: str,
        held: bool,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
        response_status: int | None,
        error: str | None,
        now: datetime,
    ) -> bool:
        """Record the outcome of attempt ``attempt``; False (nothing changed) when that
        attempt is no longer the row's (its claim ran out and another sender took it).

        A failed attempt that will be retried holds back the webhook's other waiting event
        deliveries until the same moment: an endpoint that is down costs one attempt per
        backoff, not one per event; a success of a held webhook (``held``) releases it."""
        values: dict[str, Any] = {
            "status": status,
            "next_attempt_at": next_attempt_at,
            "response_status": response_status,
            "error": error,
        }
        if status == "delivered":
            values["delivered_at"] = now
        connection = await self.session.connection()
        result = await connection.execute(
            update(DELIVERIES)
            .where(_D.id == delivery_id, _D.attempts == attempt, _D.status == "sending")
            .values(**values)
        )
        if not result.rowcount:
            return False
        if status == "pending" and next_attempt_at is not None:
            await connection.execute(
                update(WEBHOOKS).where(_W.id == webhook_id).values(held_until=next_attempt_at)
            )
            await connection.execute(
                update(DELIVERIES)
                .where(
                    _D.webhook_id == webhook_id,
                    _D.status == "pending",
                    _D.event_id.is_not(None),
                    _D.next_attempt_at < next_attempt_at,
                )
                .values(next_attempt_at=next_attempt_at)
            )
        elif status == "delivered" and held:
            released = await connection.execute(
                update(WEBHOOKS)
                .where(_W.id == webhook_id, _W.held_until.is_not(None))
                .values(held_until=None)
            )
            if released.rowcount:  # the endpoint is back: what it held back is due now
                await connection.execute(
                    update(DELIVERIES)
                    .where(
                        _D.webhook_id == webhook_id,
                        _D.status == "pending",
                        _D.attempts == 0,
                        _D.next_attempt_at > now,
                    )
                    .values(next_attempt_at=now)
                )
        return True

    async def next_due(self) -> datetime | None:
        """When the earliest pending or sending delivery that may be sent is due."""
        connection = await self.session.connection()
        return await connection.scalar(  # type: ignore[no-any-return]
            select(func.min(_D.next_attempt_at))
            .join(WEBHOOKS, _W.id == _D.webhook_id)
            .where(_D.status.in_(["pending", "sending"]), _SENDABLE)
        )

    async def deliveries(
        self, webhook_id: str, *, status: DeliveryStatus | None, limit: int
    ) -> list[Delivery]:
        """The webhook's deliveries, newest first."""
        statement = select(*_DELIVERY_COLUMNS).where(_D.webhook_id == webhook_id)
        if status is not None:
            statement = statement.where(_D.status == status)
        statement = statement.order_by(_D.created_at.desc(), _D.id.desc()).limit(limit)
        connection = await self.session.connection()
        rows = await connection.execute(statement)
        return [Delivery.model_validate(row._mapping) for row in rows]

    async def delivery(self, delivery_id: str) -> Delivery:
        connection = await self.session.connection()
        row = (
            await connection.execute(select(*_DELIVERY_COLUMNS).where(_D.id == delivery_id))
        ).first()
        if row is None:
            raise NotFoundError("delivery", delivery_id)
        return Delivery.model_validate(row._mapping)

    async def prune(self, before: datetime) -> int:
        """Delete finished (delivered or failed) deliveries created before ``before``."""
        connection = await self.session.connection()
        result = await connection.execute(
            delete(DELIVERIES).where(_D.status.in_(["delivered", "failed"]), _D.created_at < before)
        )
        return int(result.rowcount)

    def _insert(self, table: Any) -> Any:
        return (pg.insert if self.postgresql else sqlite.insert)(table)
