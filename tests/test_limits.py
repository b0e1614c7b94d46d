"""The limits' core without I/O (``taskline.api.limits``): token buckets, rate limits by key,
connection caps and the keys of client addresses. Clocks are plain numbers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskline.api.limits import (
    AddressCaps,
    ConnectionCaps,
    Rate,
    RateLimiter,
    TokenBucket,
    address_key,
)

PUBLISH = Rate("publish", 200, 1000)


def test_a_rate_is_named_as_a_ratelimit_policy() -> None:
    """``burst`` requests per the whole seconds an empty bucket takes to fill."""
    assert PUBLISH.window == 5
    assert PUBLISH.policy_field() == '"publish";q=1000;w=5'
    assert Rate("write", 50, 200).policy_field() == '"write";q=200;w=4'
    assert Rate("slow", 0.5, 1).window == 2
    assert Rate("fast", 1000, 10).window == 1  # never 0 (the draft wants w >= 1)
    for per_second, burst in ((0, 10), (-1, 10), (1, 0)):
        with pytest.raises(ValueError):
            Rate("bad", per_second, burst)


def test_a_bucket_gives_its_burst_then_the_rate() -> None:
    """A full bucket allows ``burst`` at once; then one request per 1/rate seconds, and a
    refused request takes nothing but says how long to wait."""
    rate = Rate("r", 4, 3)  # times below are exact binary fractions
    bucket = TokenBucket(rate, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == 0.25
    assert bucket.take(100.125) == 0.125  # refused: nothing taken
    assert bucket.take(100.25) == 0.0
    assert bucket.take(100.25) == 0.25
    assert bucket.level(1000.0) == 3  # never more than the burst, however long it waited
    assert bucket.full(1000.0)


def test_a_clock_going_back_adds_no_tokens() -> None:
    bucket = TokenBucket(Rate("r", 4, 2), now=50.0)
    assert bucket.take(50.0) == bucket.take(50.0) == 0.0
    assert bucket.take(10.0) == 0.25  # "earlier" than the last take: still empty
    assert bucket.take(50.25) == 0.0  # and time from the latest stamp on counts


@given(
    per_second=st.floats(min_value=0.5, max_value=500),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=300),
)
def test_no_window_allows_more_than_the_burst_plus_the_rate(
    per_second: float, burst: int, gaps: list[float]
) -> None:
    """For any arrival times: the requests allowed in any span of time are at most
    ``burst + per_second * span``; and every refusal's wait, once waited, is allowed."""
    rate = Rate("r", per_second, burst)
    bucket = TokenBucket(rate, now=0.0)
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        if wait == 0.0:
            allowed.append(now)
        else:
            probe = TokenBucket(rate, 0.0)
            probe.tokens, probe.stamp = bucket.tokens, bucket.stamp
            assert probe.take(now + wait + 1e-9) == 0.0
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            span = allowed[j] - start
            assert j - i + 1 <= burst + per_second * span + 1e-6


def test_a_limiter_keeps_a_bucket_per_key() -> None:
    """One key's burst does not touch another's; refusals are counted."""
    limiter = RateLimiter(Rate("write", 1, 2))
    assert [limiter.take("token:a", 0.0).allowed for _ in range(3)] == [True, True, False]
    verdict = limiter.take("token:b", 0.0)
    assert verdict.allowed and verdict.remaining == 1
    refused = limiter.take("token:a", 0.5)
    assert not refused.allowed and refused.wait == pytest.approx(0.5) and refused.remaining == 0
    assert limiter.refused == 2
    assert limiter.take("token:a", 1.0).allowed


def test_a_limiter_forgets_full_buckets_first_and_stays_bounded() -> None:
    """Past ``max_keys`` the buckets that filled up again go first (a key seen again starts
    full, as it would anyway); keys in use are kept while there is room."""
    limiter = RateLimiter(Rate("write", 1, 5), max_keys=10)
    for n in range(9):
        limiter.take(f"idle{n}", 0.0)
    for _ in range(5):
        limiter.take("busy", 99.5)  # empty at 99.5, half a token at 100
    assert len(limiter) == 10
    limiter.take("newcomer", 100.0)  # every idle bucket is full again by now
    assert len(limiter) == 2
    assert not limiter.take("busy", 100.0).allowed  # busy's bucket was kept: still empty
    # all in use: the oldest go, so memory stays bounded whatever keys callers make up
    for n in range(1000):
        limiter.take(f"spray{n}", 100.0)
        limiter.take(f"spray{n}", 100.0)
        assert len(limiter) <= 10


def test_connection_caps_count_per_principal_per_address_and_in_all() -> None:
    """Each cap refuses the connection that would pass it (naming which) and counts nothing;
    someone anonymous is counted by address only; releasing frees the place."""
    caps = ConnectionCaps(per_principal=2, per_address=3, total=4)
    assert caps.admit("token:a", "10.0.0.1") is None
    assert caps.admit("token:a", "10.0.0.1") is None
    assert caps.admit("token:a", "10.0.0.2") == "principal"
    assert caps.admit(None, "10.0.0.1") is None  # anonymous: no principal cap
    assert caps.admit("token:b", "10.0.0.1") == "address"
    assert caps.admit("token:b", "10.0.0.2") is None
    assert caps.admit("token:c", "10.0.0.3") == "total"
    assert caps.refused == {"total": 1, "address": 1, "principal": 1}
    assert (caps.open, caps.by_address, caps.by_principal) == (
        4,
        {"10.0.0.1": 3, "10.0.0.2": 1},
        {"token:a": 2, "token:b": 1},
    )
    caps.release("token:a", "10.0.0.1")
    assert caps.admit("token:a", "10.0.0.2") is None  # its place was free again
    for principal, address in [
        ("token:a", "10.0.0.1"),
        ("token:a", "10.0.0.2"),
        (None, "10.0.0.1"),
        ("token:b", "10.0.0.2"),
    ]:
        caps.release(principal, address)
    assert (caps.open, caps.by_address, caps.by_principal) == (0, {}, {})  # nothing kept
    assert (caps.cap("total"), caps.cap("address"), caps.cap("principal")) == (4, 3, 2)


def test_address_caps_hand_out_one_tally_per_address() -> None:
    """What a connection gets is its address's tally (no object per connection); calling it
    counts one out, and an address with none open is forgotten."""
    caps = AddressCaps(2)
    one, two = caps.admit("10.0.0.1"), caps.admit("10.0.0.1")
    assert one is not None and one is two and caps.open("10.0.0.1") == 2
    assert caps.admit("10.0.0.1") is None and caps.refused == 1
    other = caps.admit("10.0.0.2")
    assert other is not None and other is not one
    one()
    assert caps.admit("10.0.0.1") is one
    one()
    one()
    other()
    assert caps.tallies == {} and caps.open("10.0.0.1") == 0
    fresh = caps.admit("10.0.0.1")
    assert fresh is not None and fresh is not one  # a new tally; the old one counts nothing
    one()  # a stale tally called again does not touch the new one
    assert caps.open("10.0.0.1") == 1
    assert all(AddressCaps(0).admit("10.0.0.9") is not None for _ in range(1000))


def test_a_cap_of_zero_is_no_cap() -> None:
    caps = ConnectionCaps(per_principal=0, per_address=0, total=0)
    assert all(caps.admit("token:a", "10.0.0.1") is None for _ in range(10_000))
    with pytest.raises(ValueError):
        ConnectionCaps(per_principal=-1, per_address=0, total=0)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same /64: the same machine
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4 client of a dual-stack socket
        ("::1", "::/64"),
        ("not-an-address", "not-an-address"),
        ("/run/taskline.sock", "/run/taskline.sock"),
    ],
)
def test_addresses_are_counted_by_machine(host: str, key: str) -> None:
    assert address_key(host) == key
