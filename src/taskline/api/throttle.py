"""Limits on load, applied to every request once :class:`~taskline.api.doors.Doors` has
named its actor (``scope["taskline.actor"]``).

A request is counted against its **principal**: the actor's text form (``token:tok_…``,
``person:usr_…``, ``agent:agent_…``), or the client's address for someone anonymous
(everyone, on a server that does not check who asks).

- **Rate limits.** Unsafe requests (POST, PUT, PATCH, DELETE) take a token from the
  principal's bucket: publishes (``POST /api/v1/tasks/{id}/events``) from one, every other
  unsafe request from another (:class:`~taskline.api.limits.Rate`). An empty bucket answers
  ``429`` problem+json with ``Retry-After`` (whole seconds) and the ``RateLimit-Policy`` and
  ``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers (``"publish";q=1000;w=5`` and
  ``"publish";r=0;t=1``), before the route runs or the body is read. Reads are not limited.
- **WebSocket caps** (:class:`SocketCaps`, applied by Doors in its own frame: a stream lives
  for hours, and another middleware layer would stay in memory with each). Open WebSockets
  are counted per principal (anonymous ones: not), per client address
  (:func:`~taskline.api.limits.address_key`) and in all; one past a cap is accepted and
  closed at once with 1013 (try again later) and a reason naming the cap, before any data.
- **Across processes.** Given the shared store of :mod:`taskline.domain.shared_limits`
  (Redis, when ``redis_url`` is set), the buckets and the WebSocket counts are the
  deployment's: each request's token is taken there (one round trip), each WebSocket is
  counted against every process's sockets. When the store cannot be reached, each process
  applies its own buckets and caps (:class:`~taskline.api.fallback.Fallback`: a warning per
  outage, never a 500).
- **Connections per address** (:func:`connection_counter`, for
  :mod:`taskline.front_protocol`): TCP connections of any kind per peer address; one past
  the cap is closed as soon as it is accepted.
"""

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from taskline.api.doors import actor_of
from taskline.api.fallback import Fallback
from taskline.api.limits import AddressCaps, ConnectionCaps, Rate, RateLimiter, Tally, address_key
from taskline.domain.actors import ActorKind
from taskline.domain.errors import StorageError
from taskline.domain.problems import PROBLEM_TYPE_BASE
from taskline.domain.shared_limits import SharedRates, SharedSockets
from taskline.realtime import CloseCode
from taskline.settings import Settings

__all__ = [
    "SharedRates",
    "SharedSockets",
    "SocketCaps",
    "Throttle",
    "WarnEvery",
    "connection_counter",
    "frame_limit",
    "principal_of",
    "too_many_frames",
]

logger = logging.getLogger("taskline.limits")

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TASKS = "/api/v1/tasks/"
_EVENTS = "/events"
_CAP_WORDS = {
    "total": "the server has {cap} WebSockets open, its limit",
    "address": "{cap} WebSockets are open from this address, its limit",
    "principal": "{cap} WebSockets are open for this principal, its limit",
}


class WarnEvery:
    """Logs a warning at most once per ``seconds`` per topic (a flood logs one line)."""

    def __init__(self, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._last: dict[str, float] = {}

    def __call__(self, topic: str, message: str, *args: object) -> None:
        now = self.clock()
        last = self._last.get(topic)
        if last is None or now - last >= self.seconds:
            self._last[topic] = now
            logger.warning(message, *args)


#: Shared by the HTTP limits here and the frame limits of the socket endpoints.
warn = WarnEvery()


def frame_limit(settings: Settings) -> Rate | None:
    """The frame limit of each WebSocket (None: none)."""
    if not settings.limits or not settings.limit_ws_frame_rate:
        return None
    return _frame_rate(settings.limit_ws_frame_rate, settings.limit_ws_frame_burst)


@functools.cache
def _frame_rate(per_second: float, burst: int) -> Rate:
    return Rate("frames", per_second, burst)


def too_many_frames(rate: Rate, where: str) -> tuple[dict[str, object], str]:
    """The ``error`` event's data and the close reason for a socket past its frame limit
    (and a warning in the log, at most once a minute)."""
    warn("ws:frames", "frame limit: a WebSocket (%s) sent more than %s", where, rate.describe())
    message = f"more client frames than the limit ({rate.describe()}); closing"
    return {"code": "rate_limited", "message": message}, f"too many frames: {rate.describe()}"


def connection_counter(cap: int) -> Callable[[str], Tally | None]:
    """Counts TCP connections per peer address (:func:`address_key`), at most ``cap`` each:
    given a new connection's peer host, returns what to call when it is lost (the address's
    :class:`~taskline.api.limits.Tally`, shared by its connections), or None (the connection
    is to be closed at once)."""
    caps = AddressCaps(cap)

    def admit(host: str) -> Tally | None:
        key = address_key(host)
        tally = caps.admit(key)
        if tally is None:
            warn(
                "tcp:address",
                "connection cap: a connection from %s closed at once (%d open from there, "
                "the limit; %d refused so far)",
                key,
                cap,
                caps.refused,
            )
        return tally

    return admit


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    return address_key(str(client[0])) if client else None


def principal_of(scope: Scope) -> str | None:
    """Who a request counts against: the actor's text form, or None if anonymous."""
    actor = actor_of(scope)
    return None if actor.kind == ActorKind.ANONYMOUS else str(actor)


def _is_publish(method: str, path: str) -> bool:
    if method != "POST" or not path.startswith(_TASKS) or not path.endswith(_EVENTS):
        return False
    task_id = path[len(_TASKS) : -len(_EVENTS)]
    return bool(task_id) and "/" not in task_id


class Throttle:
    """ASGI middleware applying the rate limits of the module docstring before ``app``.

    A request it lets through is ``app``'s call itself, not a call inside one of its own: a
    long response (a Server-Sent Events stream) keeps no frame of it. (An unsafe request
    checked against the shared store is served inside the coroutine that awaited it.)

    Args:
        app: what serves the request once it passed.
        publish: the bucket of each principal's publishes (None: not limited).
        writes: the bucket of each principal's other unsafe requests (None: not limited).
        shared: the buckets shared by every process (None: this process's own only).
        fallback: when ``shared`` is asked and when this process's own buckets apply.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        publish: Rate | None,
        writes: Rate | None,
        shared: SharedRates | None = None,
        fallback: Fallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.publish = RateLimiter(publish) if publish else None
        self.writes = RateLimiter(writes) if writes else None
        self.shared = shared
        self.fallback = fallback if fallback is not None else Fallback()
        self.clock = clock

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http":
            method: str = scope["method"]
            if method in _UNSAFE:
                limiter = self.publish if _is_publish(method, scope["path"]) else self.writes
                if limiter is not None:
                    principal = principal_of(scope)
                    key = principal if principal is not None else f"address:{_address(scope)}"
                    if self.shared is not None and self.fallback.usable():
                        return self._shared_take(self.shared, limiter, key, scope, receive, send)
                    verdict = limiter.take(key, self.clock())
                    if not verdict.allowed:
                        return self._refuse(limiter, key, verdict.wait, scope, send)
        return self.app(scope, receive, send)

    async def _shared_take(
        self,
        shared: SharedRates,
        limiter: RateLimiter,
        key: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Take the token from the shared bucket (this process's own if it does not answer)."""
        rate = limiter.rate
        try:
            wait, _ = await shared.take(rate.name, key, rate.per_second, rate.burst)
        except StorageError as exc:
            self.fallback.failed(exc)
            wait = limiter.take(key, self.clock()).wait
        else:
            self.fallback.succeeded()
            if wait:
                limiter.refused += 1
        if wait:
            await self._refuse(limiter, key, wait, scope, send)
        else:
            await self.app(scope, receive, send)

    async def _refuse(
        self, limiter: RateLimiter, key: str, wait: float, scope: Scope, send: Send
    ) -> None:
        """Answer 429 with the policy's fields."""
        rate = limiter.rate
        retry = max(1, math.ceil(wait))
        warn(
            f"rate:{rate.name}",
            "rate limit: %s refused %s its %s request (%s; %d refused so far)",
            rate.name,
            key,
            scope["method"],
            rate.describe(),
            limiter.refused,
        )
        noun = "publishes" if rate.name == "publish" else "unsafe requests (writes)"
        body = orjson.dumps(
            {
                "type": PROBLEM_TYPE_BASE + "rate-limited",
                "title": "Too many requests",
                "status": 429,
                "detail": f"too many {noun}: {rate.describe()} are allowed; retry in {retry} s",
                "instance": scope["path"],
                "violated-policies": [rate.name],
                "retry_after": retry,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()),
                    (b"ratelimit-policy", rate.policy_field().encode()),
                    (b"ratelimit", f'"{rate.name}";r=0;t={retry}'.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SocketCaps:
    """The WebSocket caps of the module docstring, for :class:`~taskline.api.doors.Doors`:
    :meth:`admit` a connection once its actor is known, and :meth:`release` it when the app
    is done with it (or :meth:`refuse` it).

    ``caps`` counts this process's sockets (and applies the caps alone when there is no
    ``shared`` store, or it does not answer); ``shared`` counts every process's.
    """

    def __init__(
        self,
        caps: ConnectionCaps,
        *,
        shared: SharedSockets | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self.caps = caps
        self.shared = shared
        self.fallback = fallback if fallback is not None else Fallback()

    async def admit(self, scope: Scope) -> str | None:
        """Count the WebSocket in; or the cap it would pass (nothing counted)."""
        principal, address = principal_of(scope), _address(scope)
        caps, shared = self.caps, self.shared
        if shared is not None and self.fallback.usable():
            try:
                refusal = await shared.admit(
                    principal,
                    address,
                    per_principal=caps.per_principal,
                    per_address=caps.per_address,
                    total=caps.total,
                )
            except StorageError as exc:
                self.fallback.failed(exc)
            else:
                self.fallback.succeeded()
                if refusal is None:
                    caps.count_in(principal, address)
                else:
                    caps.refused[refusal] += 1
                return refusal
        refusal = caps.admit(principal, address)
        if refusal is None and shared is not None:
            shared.counted(principal, address)
        return refusal

    async def release(self, scope: Scope) -> None:
        """Count out a WebSocket :meth:`admit` counted in (the same scope)."""
        principal, address = principal_of(scope), _address(scope)
        self.caps.release(principal, address)
        if self.shared is not None:
            await self.shared.release(principal, address)

    async def refuse(self, scope: Scope, receive: Receive, send: Send, refusal: str) -> None:
        """Accept, then close with 1013 and a reason naming the cap, before any data (as
        Doors refuses: browsers see the code and the reason)."""
        caps = self.caps
        cap = caps.cap(refusal)
        warn(
            f"ws:{refusal}",
            "connection cap: a WebSocket refused (%s cap of %d; %d refused so far)",
            refusal,
            cap,
            sum(caps.refused.values()),
        )
        reason = _CAP_WORDS[refusal].format(cap=cap) + "; try again later"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CloseCode.TRY_AGAIN_LATER, "reason": reason})
