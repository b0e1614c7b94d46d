"""Outgoing webhooks: what admins configure, and the two loops that deliver events.

**The contract** (README "Webhooks"). Events reach webhooks *after* they are committed, never
in the publish path. A **dispatcher** reads each task's log past a durable per-task cursor
(per-task seqs are gapless and commit-ordered; no global order is: design.md) and, in one
transaction, inserts one outbox row per (webhook, event) the webhook takes and moves the
cursor: a crash before the commit redoes the work, and the unique ``(webhook_id, event_id)``
makes a redo enqueue nothing twice. It wakes on every local commit (a bus listener that only
sets a flag) and polls every ``poll_interval`` for other processes' commits.

A **sender** (its own task, at most ``concurrency`` requests in flight, each within
``timeout`` seconds in all) claims due rows, which moves them to ``sending`` with a claim
that runs out after ``timeout`` plus a margin, POSTs the signed body, and right after the
answer records it: ``delivered`` on a 2xx; otherwise ``pending`` again with an exponential
backoff, or ``failed`` after ``max_attempts``. Every attempt of a delivery carries the same
``webhook-id``.

So delivery is **at least once**: a delivery is sent again only when its outcome was not
recorded — the process died (or the database was unreachable) between the receiver's answer
and the commit of ``delivered``, a window of one commit — once its claim runs out. Nothing is
sent again after ``delivered`` is committed. Receivers that must act once dedupe by
``webhook-id``; exactly once needs that cooperation, and no sender can promise more.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from taskline.domain.access import Action, require
from taskline.domain.actors import Actor
from taskline.domain.events import WebSocketMessage
from taskline.domain.ids import new_id
from taskline.domain.models import utc_now
from taskline.domain.webhooks import (
    TEST_EVENT,
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    backoff,
    event_names,
    matches,
    new_secret,
    render,
    secret_key,
    sign,
)
from taskline.store.database import Database
from taskline.store.webhooks import Claimed, WebhookStore

__all__ = ["DeliveryPolicy", "WebhookDispatcher", "WebhookSender", "WebhookService"]

logger = logging.getLogger("taskline.webhooks")

#: Seconds a claim outlives its request's timeout (recording the outcome happens in it).
_CLAIM_MARGIN = 10.0
#: Seconds ``POST /webhooks/{id}/test`` waits for the first attempt's outcome.
_TEST_WAIT = 1.0
#: Bytes of a failed answer's body kept in the delivery log.
_ERROR_BODY = 200


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_of(values: dict[str, Any]) -> dict[str, Any]:
    """The standard message of a stored event: ``{type, timestamp, data: envelope}``."""
    envelope = WebSocketMessage.model_validate(values).model_dump(mode="json")
    return {"type": values["event_type"], "timestamp": _iso(values["timestamp"]), "data": envelope}


class WebhookDispatcher:
    """Turns committed events into outbox rows (see the module docstring).

    Args:
        on_enqueued: called (no arguments) after a commit that enqueued deliveries.
        poll_interval: seconds between two looks at the logs when nothing woke it.
        gather: seconds it waits after a wake-up, so the commits of that moment are read
            in one transaction instead of one each.
        task_batch, event_batch: tasks per transaction, events per task per transaction.
    """

    def __init__(
        self,
        database: Database,
        on_enqueued: Callable[[], None],
        *,
        poll_interval: float = 1.0,
        gather: float = 0.05,
        task_batch: int = 100,
        event_batch: int = 500,
    ) -> None:
        self.database = database
        self.on_enqueued = on_enqueued
        self.poll_interval = poll_interval
        self.gather = gather
        self.task_batch = task_batch
        self.event_batch = event_batch
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._enabled: bool | None = None  #: whether a webhook is enabled (None: unknown)
        self._checked_at = 0.0
        self.enqueued = 0  #: deliveries offered since the start

    async def on_committed(self, batch: list[WebSocketMessage]) -> None:
        """Bus listener: new events are committed (only sets a flag: the publish path)."""
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def webhooks_changed(self) -> None:
        """A webhook was added, changed or deleted here: look again at once."""
        self._enabled = None
        self._wake.set()

    def idle(self) -> bool:
        """True while no webhook is known to be enabled, as last seen less than
        ``10 * poll_interval`` ago: the loops then leave the database alone (a webhook added
        by another process is found by the next look, and that process's own dispatcher
        reads every log meanwhile)."""
        recent = time.monotonic() - self._checked_at < 10 * self.poll_interval
        return self._enabled is False and recent

    async def run_once(self) -> int:
        """Read every log past its cursor (in transactions of ``task_batch`` tasks); return
        how many deliveries were offered (a redo's are skipped). Nothing is written while no
        webhook is enabled."""
        total = 0
        if self.idle():
            return total
        while True:
            async with self.database.read() as session:
                store = WebhookStore(session)
                self._enabled = await store.any_enabled()
                self._checked_at = time.monotonic()
                if not self._enabled or not await store.behind(1):
                    return total
            async with self.database.write() as session:
                store = WebhookStore(session, postgresql=not self.database.is_sqlite)
                added, more = await self._pass(store)
            total += added
            if added:
                self.enqueued += added
                self.on_enqueued()
            if not more:
                return total

    async def _pass(self, store: WebhookStore) -> tuple[int, bool]:
        """One transaction: (deliveries offered, whether tasks are left behind)."""
        webhooks = await store.enabled()
        if not webhooks:
            return 0, False
        behind = await store.behind(self.task_batch)
        now = utc_now()
        rows: list[dict[str, Any]] = []
        cursors: dict[str, int] = {}
        more = len(behind) == self.task_batch
        for task_id, cursor, head in behind:
            events = await store.events_after(task_id, cursor, self.event_batch)
            if len(events) == self.event_batch:
                cursors[task_id] = events[-1].seq
                more = True
            else:  # all of them: a trimmed range (retention) has no events to read
                cursors[task_id] = max([head, *(e.seq for e in events)])
            for event in events:
                names = event_names(event.event_type, event.data)
                takers = [w for w in webhooks if matches(w.events, names)]
                if not takers:
                    continue
                rows.extend(  # the message is built from the event when it is sent
                    _delivery(
                        w.id,
                        None,
                        event.id,
                        event.task_id,
                        event.event_type,
                        now,
                        due=max(now, w.held_until or now),
                    )
                    for w in takers
                )
        await store.enqueue(rows)  # the ones enqueued already (a redo) are skipped
        await store.move_cursors(cursors)
        return len(rows), more

    async def start(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="taskline-webhook-dispatcher")

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            await asyncio.sleep(self.gather)
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: the next round tries again
                logger.exception("enqueueing webhook deliveries failed")


def _delivery(
    webhook_id: str,
    message: dict[str, Any] | None,
    event_id: str | None,
    task_id: str | None,
    event_type: str,
    now: datetime,
    *,
    due: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "webhook_id": webhook_id,
        "event_id": event_id,
        "task_id": task_id,
        "event_type": event_type,
        "message": message,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": due or now,
        "last_attempt_at": None,
        "delivered_at": None,
        "response_status": None,
        "error": None,
        "created_at": now,
    }


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are sent: shared by the sender and the dispatcher.

    Attributes:
        timeout: seconds one request may take in all (connect, send, answer).
        max_attempts: attempts before a delivery is ``failed``.
        backoff_base, backoff_max: the wait after the first failed attempt, doubled after
            each further one, up to ``backoff_max``.
        concurrency: requests in flight at most (a slow receiver holds one slot).
        poll_interval: seconds between two looks for due deliveries when nothing woke it.
        user_agent: the ``User-Agent`` of the requests.
    """

    timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 5.0
    backoff_max: float = 3600.0
    concurrency: int = 8
    poll_interval: float = 1.0
    user_agent: str = "Taskline-Webhooks"


class WebhookSender:
    """Sends due deliveries with retries (see the module docstring).

    Args:
        policy: timeouts, attempts, backoff, concurrency, polling and ``User-Agent``.
        transport: an httpx transport (None: the network).
        idle: True when no webhook is enabled: then it looks for due deliveries (tests,
            retries of tests) only every ``10 * policy.poll_interval``, or when woken.
    """

    def __init__(
        self,
        database: Database,
        policy: DeliveryPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        idle: Callable[[], bool] = lambda: False,
    ) -> None:
        self.database = database
        self.policy = policy
        self.idle = idle
        self.transport = transport
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._finished: dict[str, asyncio.Event] = {}
        self.sent = 0  #: attempts made since the start
        self.delivered = 0  #: of those, the ones answered with a 2xx

    def wake(self) -> None:
        self._wake.set()

    async def wait_finished(self, delivery_id: str, timeout: float) -> None:
        """Wait until this process recorded an attempt of the delivery (or ``timeout``)."""
        finished = self._finished.setdefault(delivery_id, asyncio.Event())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), timeout)
        finally:
            self._finished.pop(delivery_id, None)

    async def start(self) -> None:
        if self._loop is None or self._loop.done():
            self._client = httpx.AsyncClient(
                transport=self.transport,
                timeout=self.policy.timeout,
                follow_redirects=False,
                headers={"User-Agent": self.policy.user_agent},
                limits=httpx.Limits(max_connections=self.policy.concurrency),
            )
            self._loop = asyncio.create_task(self._run(), name="taskline-webhook-sender")

    async def stop(self) -> None:
        """Stop taking deliveries and cancel those in flight (their claims run out, so they
        are sent again later: at least once)."""
        loop, self._loop = self._loop, None
        for task in [loop, *self._in_flight]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [loop, *self._in_flight] if t), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        woken = True
        while True:
            self._wake.clear()
            wait = self.policy.poll_interval
            try:
                free = self.policy.concurrency - len(self._in_flight)
                if not woken and self.idle():
                    wait = 10 * self.policy.poll_interval
                elif free > 0:
                    claimed = await self._claim(free)
                    for delivery in claimed:
                        task = asyncio.create_task(self._attempt(delivery))
                        self._in_flight.add(task)
                        task.add_done_callback(self._done)
                    if len(claimed) == free:
                        woken = True
                        continue  # more may be due
                    wait = await self._until_due(wait)
                # else every slot is busy: each claims the next due delivery itself, and a
                # slot that found none wakes this loop
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: the next round tries again
                logger.exception("claiming webhook deliveries failed")
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
                woken = True

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free

    async def _claim(self, limit: int) -> list[Claimed]:
        now = utc_now()
        until = now + timedelta(seconds=self.policy.timeout + _CLAIM_MARGIN)
        async with self.database.write() as session:
            store = WebhookStore(session, postgresql=not self.database.is_sqlite)
            return await store.claim(now=now, until=until, limit=limit)

    async def _until_due(self, longest: float) -> float:
        async with self.database.read() as session:
            due = await WebhookStore(session).next_due()
        if due is None:
            return longest
        return min(longest, max(0.0, (due - utc_now()).total_seconds()))

    async def _attempt(self, delivery: Claimed | None) -> None:
        """Send attempts one after another: each outcome is recorded at once, in the
        transaction that claims the next due delivery (None: nothing was due)."""
        while delivery is not None:
            message, unsendable = delivery.message, None
            if message is None and delivery.event is not None:
                try:
                    message = message_of(delivery.event)
                except Exception as exc:  # a stored value no encoder writes, say
                    unsendable = f"the event cannot be sent: {type(exc).__name__}"
            elif message is None:  # trimmed by retention before it could be sent
                unsendable = "the event is no longer in the log (retention)"
            if message is None:
                delivery = await self._record(delivery, None, unsendable, give_up=True)
                continue
            status_code, error = await self._post(delivery, message)
            self.sent += 1
            delivery = await self._record(delivery, status_code, error)

    async def _record(
        self,
        delivery: Claimed,
        status_code: int | None,
        error: str | None,
        *,
        give_up: bool = False,
    ) -> Claimed | None:
        """Record an attempt's outcome (``give_up``: failed, whatever the attempt) and claim
        the next due delivery (if any)."""
        now = utc_now()
        ok = status_code is not None and 200 <= status_code < 300
        status: DeliveryStatus
        if ok:
            status, next_at = "delivered", None
            self.delivered += 1
        elif give_up or delivery.attempt >= self.policy.max_attempts:
            status, next_at = "failed", None
        else:
            policy = self.policy
            wait = backoff(delivery.attempt, base=policy.backoff_base, maximum=policy.backoff_max)
            status, next_at = "pending", now + timedelta(seconds=wait)
        following: list[Claimed] = []
        try:
            async with self.database.write() as session:
                store = WebhookStore(session, postgresql=not self.database.is_sqlite)
                await store.finish(
                    delivery.id,
                    delivery.attempt,
                    webhook_id=delivery.webhook_id,
                    held=delivery.held,
                    status=status,
                    next_attempt_at=next_at,
                    response_status=status_code,
                    error=error,
                    now=now,
                )
                if self._loop is not None:  # not stopping
                    until = now + timedelta(seconds=self.policy.timeout + _CLAIM_MARGIN)
                    following = await store.claim(now=now, until=until, limit=1)
        except Exception:  # the claim runs out and the delivery is sent again
            logger.exception("recording webhook delivery %s failed", delivery.id)
        finished = self._finished.get(delivery.id)
        if finished is not None:
            finished.set()
        return following[0] if following else None

    async def _post(
        self, delivery: Claimed, message: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """POST the delivery: (status code, error) — no status when no answer came."""
        assert self._client is not None
        body = render(delivery.format, message)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret_key(delivery.secret), delivery.id, timestamp, body),
        }
        try:
            async with asyncio.timeout(self.policy.timeout):
                request = self._client.build_request(
                    "POST", delivery.url, content=body, headers=headers
                )
                response = await self._client.send(request, stream=True)
                try:
                    head = b""
                    if not 200 <= response.status_code < 300:
                        async for chunk in response.aiter_bytes():
                            head += chunk
                            if len(head) >= _ERROR_BODY:
                                break
                finally:
                    await response.aclose()
        except TimeoutError:
            return None, f"no answer within {self.policy.timeout:g} s"
        except Exception as exc:  # httpx's errors, an URL it cannot use (port 99999), …
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return response.status_code, None
        text = head[:_ERROR_BODY].decode("utf-8", "replace").strip()
        return response.status_code, f"HTTP {response.status_code}" + (f": {text}" if text else "")


class WebhookService:
    """Webhooks for admins (REST ``/api/v1/webhooks``, ``taskline webhooks``), and the
    dispatcher and the sender that deliver to them.

    Args:
        policy: how deliveries are sent (None: the defaults of :class:`DeliveryPolicy`);
            its ``poll_interval`` is also the dispatcher's.
        retention_days: finished deliveries older than this are deleted (hourly).
        transport: the sender's (None: the network).
    """

    def __init__(
        self,
        database: Database,
        policy: DeliveryPolicy | None = None,
        *,
        retention_days: float = 7.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.database = database
        self.retention_days = retention_days
        policy = policy or DeliveryPolicy()
        self.sender = WebhookSender(database, policy, transport=transport)
        self.dispatcher = WebhookDispatcher(
            database, self.sender.wake, poll_interval=policy.poll_interval
        )
        self.sender.idle = self.dispatcher.idle
        self._pruner: asyncio.Task[None] | None = None

    async def on_committed(self, batch: list[WebSocketMessage]) -> None:
        """Bus listener (see :meth:`WebhookDispatcher.on_committed`)."""
        await self.dispatcher.on_committed(batch)

    # --- admins' operations -----------------------------------------------------------------

    async def create(self, actor: Actor, spec: WebhookCreate) -> WebhookCreated:
        """Add a webhook; the answer holds its secret (generated when none is given), which
        is never shown again. Events committed before it are not for it.

        Raises:
            NotAuthenticatedError, ForbiddenError: not an admin.
        """
        require(actor, Action.MANAGE_WEBHOOKS)
        now = utc_now()
        secret = spec.secret or new_secret()
        values = {
            **spec.model_dump(exclude={"secret"}),
            "id": new_id("whk"),
            "secret": secret,
            "created_at": now,
            "updated_at": now,
            "created_by": str(actor),
        }
        async with self.database.write() as session:
            store = WebhookStore(session)
            if spec.enabled and not await store.any_enabled():
                await store.fast_forward()
            webhook = await store.create(values)
        self.dispatcher.webhooks_changed()
        return WebhookCreated(**webhook.model_dump(), secret=secret)

    async def all(self, actor: Actor) -> list[Webhook]:
        require(actor, Action.MANAGE_WEBHOOKS)
        async with self.database.read() as session:
            return await WebhookStore(session).all()

    async def get(self, actor: Actor, webhook_id: str) -> Webhook:
        """Raises NotFoundError (and the access errors of :meth:`create`)."""
        require(actor, Action.MANAGE_WEBHOOKS)
        async with self.database.read() as session:
            return await WebhookStore(session).get(webhook_id)

    async def patch(self, actor: Actor, webhook_id: str, changes: dict[str, Any]) -> Webhook:
        """Change a webhook's url, events, format, enabled or description. Enabling one
        when none was enabled skips the events committed meanwhile.

        Raises:
            NotFoundError: no such webhook.
        """
        require(actor, Action.MANAGE_WEBHOOKS)
        async with self.database.write() as session:
            store = WebhookStore(session)
            current = await store.get(webhook_id)
            if changes.get("enabled") and not current.enabled and not await store.any_enabled():
                await store.fast_forward()
            if not changes:
                return current
            values = {**changes, "updated_at": utc_now()}
            if "url" in changes:
                values["held_until"] = None  # another endpoint: nothing failed there yet
            webhook = await store.update(webhook_id, values)
        self.dispatcher.webhooks_changed()
        if webhook.enabled:
            self.sender.wake()
        return webhook

    async def delete(self, actor: Actor, webhook_id: str) -> None:
        """Delete a webhook and its delivery log. Raises NotFoundError."""
        require(actor, Action.MANAGE_WEBHOOKS)
        async with self.database.write() as session:
            await WebhookStore(session).delete(webhook_id)
        self.dispatcher.webhooks_changed()

    async def deliveries(
        self,
        actor: Actor,
        webhook_id: str,
        *,
        status: DeliveryStatus | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """The webhook's delivery log, newest first. Raises NotFoundError."""
        require(actor, Action.MANAGE_WEBHOOKS)
        async with self.database.read() as session:
            store = WebhookStore(session)
            await store.get(webhook_id)
            return await store.deliveries(webhook_id, status=status, limit=limit)

    async def test(self, actor: Actor, webhook_id: str) -> Delivery:
        """Send a test delivery (type ``webhook.test``, even to a disabled webhook) and
        return it after its first attempt, or after a second as it stands then (``sending``,
        or ``pending`` when another process's sender has not taken it yet): a slow receiver
        does not hold the request; read the outcome in the delivery log.

        Raises:
            NotFoundError: no such webhook.
        """
        require(actor, Action.MANAGE_WEBHOOKS)
        now = utc_now()
        message = {
            "type": TEST_EVENT,
            "timestamp": _iso(now),
            "data": {"webhook_id": webhook_id, "message": "a test delivery from Taskline"},
        }
        row = _delivery(webhook_id, message, None, None, TEST_EVENT, now)
        async with self.database.write() as session:
            store = WebhookStore(session, postgresql=not self.database.is_sqlite)
            await store.get(webhook_id)
            await store.enqueue([row])
        waiting = asyncio.create_task(self.sender.wait_finished(row["id"], _TEST_WAIT))
        await asyncio.sleep(0)  # registered before the sender may finish
        self.sender.wake()
        await waiting
        async with self.database.read() as session:
            return await WebhookStore(session).delivery(row["id"])

    # --- the loops --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.sender.start()
        await self.dispatcher.start()
        if self._pruner is None or self._pruner.done():
            self._pruner = asyncio.create_task(self._prune(), name="taskline-webhook-pruner")

    async def stop(self) -> None:
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
        await self.dispatcher.stop()
        await self.sender.stop()

    async def _prune(self) -> None:
        while True:
            try:
                before = utc_now() - timedelta(days=self.retention_days)
                async with self.database.write() as session:
                    pruned = await WebhookStore(session).prune(before)
                if pruned:
                    logger.info("deleted %d finished webhook deliveries", pruned)
            except Exception:
                logger.exception("pruning webhook deliveries failed")
            await asyncio.sleep(3600.0)
