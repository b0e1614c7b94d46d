"""Limits on load, without I/O: token buckets, rate limits by key, connection caps.

Nothing here reads a clock or touches a socket: callers pass ``now`` (seconds, monotonic),
so every rule is tested with plain numbers (``tests/test_limits.py``). The ASGI shell that
applies them to requests and WebSockets is :mod:`taskline.api.throttle`; the WebSocket
endpoints (:mod:`taskline.api.ws`, :mod:`taskline.api.agent_ws`) keep one
:class:`TokenBucket` per connection for its frames.

- A :class:`Rate` is a token bucket's shape: ``per_second`` tokens flow in, at most ``burst``
  are kept. A client may send ``burst`` at once, then ``per_second`` on average.
- :class:`RateLimiter` keeps one bucket per key (a principal, or a client address); it
  forgets buckets that have filled up again when it holds too many, so its memory is bounded
  whatever keys callers make up.
- :class:`ConnectionCaps` counts open connections per principal, per address and in all.
- :class:`AddressCaps` counts connections per address only, for the accept path: what it
  hands out for a connection is shared by every connection of that address (no object per
  connection), and calling it counts one out.
"""

import ipaddress
import math
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "AddressCaps",
    "ConnectionCaps",
    "Rate",
    "RateLimiter",
    "Tally",
    "TokenBucket",
    "Verdict",
    "address_key",
]


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` on average, ``burst`` at once; ``name`` names the policy to clients."""

    name: str
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")

    @property
    def window(self) -> int:
        """Whole seconds an empty bucket takes to fill (the ``w`` of ``RateLimit-Policy``)."""
        return max(1, math.ceil(self.burst / self.per_second))

    def policy_field(self) -> str:
        """This rate as a ``RateLimit-Policy`` item (draft-ietf-httpapi-ratelimit-headers):
        ``burst`` requests (``q``) per the time the bucket takes to fill (``w``)."""
        return f'"{self.name}";q={self.burst};w={self.window}'

    def describe(self) -> str:
        return f"{self.per_second:g} per second (bursts of {self.burst})"


class TokenBucket:
    """One bucket of ``rate``: the tokens it held at ``stamp``. Starts full."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.stamp = now

    def level(self, now: float) -> float:
        """Tokens held at ``now`` (what flowed in since ``stamp``, up to ``burst``)."""
        elapsed = now - self.stamp
        if elapsed <= 0:  # a clock that did not move (or went back) adds nothing
            return self.tokens
        return min(float(self.rate.burst), self.tokens + elapsed * self.rate.per_second)

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if the bucket holds them: returns 0.0. Otherwise takes
        nothing and returns the seconds until it will hold them."""
        tokens = self.level(now)
        self.stamp = max(self.stamp, now)
        self.tokens = tokens
        if tokens >= cost:
            self.tokens = tokens - cost
            return 0.0
        return (cost - tokens) / self.rate.per_second

    def full(self, now: float) -> bool:
        """Whether the bucket is full again (then forgetting it changes nothing)."""
        return self.level(now) >= self.rate.burst


class Verdict(NamedTuple):
    """What :meth:`RateLimiter.take` decided."""

    #: 0.0: allowed; else the seconds until the request would be allowed.
    wait: float
    #: Whole tokens left after this request.
    remaining: int

    @property
    def allowed(self) -> bool:
        return self.wait == 0.0


class RateLimiter:
    """One :class:`TokenBucket` per key, all of the same :class:`Rate`.

    At most about ``max_keys`` buckets are kept: past that, buckets that are full again are
    forgotten (a key seen again starts full, which is what it would be anyway), and if every
    bucket is still in use the oldest are forgotten too (their keys start afresh: under that
    many distinct callers, memory matters more than those callers' last second).
    """

    def __init__(self, rate: Rate, *, max_keys: int = 50_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}
        #: Requests refused so far.
        self.refused = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float, cost: float = 1.0) -> Verdict:
        """Count one request of ``key`` at ``now``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, now)
        wait = bucket.take(now, cost)
        if wait:
            self.refused += 1
        return Verdict(wait, int(bucket.tokens))

    def _forget(self, now: float) -> None:
        buckets = self._buckets
        for key in [k for k, b in buckets.items() if b.full(now)]:
            del buckets[key]
        excess = len(buckets) - self.max_keys * 9 // 10
        if excess > 0:
            for key in list(buckets)[:excess]:  # the oldest first (dicts keep insertion order)
                del buckets[key]


class ConnectionCaps:
    """Open connections per principal, per address and in all, each capped (0: no cap).

    :meth:`admit` counts a connection in (or says which cap refuses it); :meth:`release`
    counts it out, with the same principal and address. A principal of ``None`` (someone
    anonymous) is counted by address only.
    """

    def __init__(self, *, per_principal: int, per_address: int, total: int) -> None:
        if min(per_principal, per_address, total) < 0:
            raise ValueError("caps are >= 0 (0: no cap)")
        self.per_principal = per_principal
        self.per_address = per_address
        self.total = total
        self.open = 0
        self.by_principal: dict[str, int] = {}
        self.by_address: dict[str, int] = {}
        #: Connections refused so far, by the cap that refused them.
        self.refused = {"total": 0, "address": 0, "principal": 0}

    def admit(self, principal: str | None, address: str | None) -> str | None:
        """Count a connection in and return None, or return the cap it would pass
        (``"total"``, ``"address"`` or ``"principal"``) and count nothing."""
        refusal = None
        if self.total and self.open >= self.total:
            refusal = "total"
        elif (
            address is not None
            and self.per_address
            and self.by_address.get(address, 0) >= self.per_address
        ):
            refusal = "address"
        elif (
            principal is not None
            and self.per_principal
            and self.by_principal.get(principal, 0) >= self.per_principal
        ):
            refusal = "principal"
        if refusal is not None:
            self.refused[refusal] += 1
            return refusal
        self.count_in(principal, address)
        return None

    def count_in(self, principal: str | None, address: str | None) -> None:
        """Count a connection in without checking the caps (another check admitted it)."""
        self.open += 1
        if address is not None:
            self.by_address[address] = self.by_address.get(address, 0) + 1
        if principal is not None:
            self.by_principal[principal] = self.by_principal.get(principal, 0) + 1

    def release(self, principal: str | None, address: str | None) -> None:
        """Count out a connection :meth:`admit` counted in."""
        self.open -= 1
        if address is not None:
            _decrement(self.by_address, address)
        if principal is not None:
            _decrement(self.by_principal, principal)

    def cap(self, which: str) -> int:
        return {"total": self.total, "address": self.per_address}.get(which, self.per_principal)


class Tally:
    """The open connections of one address of an :class:`AddressCaps`; calling it counts one
    of them out (once per connection admitted)."""

    __slots__ = ("count", "key", "owner")

    def __init__(self, owner: "AddressCaps", key: str) -> None:
        self.owner = owner
        self.key = key
        self.count = 0

    def __call__(self) -> None:
        self.count -= 1
        if self.count <= 0 and self.owner.tallies.get(self.key) is self:
            del self.owner.tallies[self.key]  # nothing kept for an address that left


class AddressCaps:
    """At most ``cap`` connections per address (0: no cap)."""

    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError("the cap is >= 0 (0: no cap)")
        self.cap = cap
        self.tallies: dict[str, Tally] = {}
        #: Connections refused so far.
        self.refused = 0

    def admit(self, key: str) -> Tally | None:
        """Count a connection of ``key`` in: returns the tally to call when it ends, or None
        (refused: nothing counted)."""
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = Tally(self, key)
        elif self.cap and tally.count >= self.cap:
            self.refused += 1
            return None
        tally.count += 1
        return tally

    def open(self, key: str) -> int:
        tally = self.tallies.get(key)
        return tally.count if tally is not None else 0


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def address_key(host: str) -> str:
    """The key a client address is counted under: an IPv4 address as it is, an IPv6 one by
    its /64 (one machine is usually given a whole /64), an IPv4-mapped IPv6 one as IPv4;
    anything else (a Unix socket's name) as it is."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
