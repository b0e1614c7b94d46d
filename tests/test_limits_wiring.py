"""How the settings become limits, without a server: the throttle and the frame limit (or
none of them), the protocol classes with their header timeout, the warnings of a flood, and
the open-files headroom check of ``taskline serve``."""

import logging
import resource

import pytest

from taskline.api.limits import Rate
from taskline.api.throttle import Throttle, WarnEvery, connection_counter, frame_limit
from taskline.front_protocol import HeadTimedHttpProtocol, TasklineHttpProtocol, http_protocol
from taskline.server import FD_HEADROOM, file_descriptor_headroom, socket_caps, throttled
from taskline.settings import Settings


def test_a_flood_of_warnings_logs_one_line_per_topic_and_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    warn = WarnEvery(60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="taskline.limits"):
        for _ in range(100):
            warn("rate:publish", "refused %s", "a")
        warn("ws:total", "refused %s", "b")
        now[0] = 59.0
        warn("rate:publish", "refused %s", "c")
        now[0] = 60.0
        warn("rate:publish", "refused %s", "d")
    assert [r.getMessage() for r in caplog.records] == ["refused a", "refused b", "refused d"]


def test_limits_off_means_no_throttle_no_caps_and_no_frame_limit() -> None:
    """TASKLINE_LIMITS=false (or every limit 0) leaves the app as it is."""

    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        pass

    off = Settings(limits=False)
    assert throttled(app, off) is app  # type: ignore[arg-type]
    assert socket_caps(off) is None and frame_limit(off) is None
    nothing = Settings(
        limit_publish_rate=0,
        limit_write_rate=0,
        limit_ws_per_principal=0,
        limit_ws_per_ip=0,
        limit_ws_total=0,
        limit_ws_frame_rate=0,
    )
    assert throttled(app, nothing) is app  # type: ignore[arg-type]
    assert socket_caps(nothing) is None and frame_limit(nothing) is None
    default = throttled(app, Settings())  # type: ignore[arg-type]
    assert isinstance(default, Throttle)
    assert default.publish is not None and default.publish.rate == Rate("publish", 200, 1000)
    assert default.writes is not None and default.writes.rate == Rate("write", 50, 200)
    sockets = socket_caps(Settings())
    assert sockets is not None
    assert (sockets.caps.per_principal, sockets.caps.per_address) == (1000, 10_000)
    assert sockets.caps.total == 20_000
    assert frame_limit(Settings()) == Rate("frames", 200, 2000)


def test_a_request_let_through_is_the_apps_own_call() -> None:
    """The throttle adds no frame to what it lets through: a stream (SSE) keeps none."""
    marker = object()

    def app(scope: object, receive: object, send: object) -> object:
        return marker

    throttle = throttled(app, Settings())  # type: ignore[arg-type]
    for scope in (
        {"type": "http", "method": "GET", "path": "/api/v1/tasks/t/stream"},
        {"type": "http", "method": "POST", "path": "/api/v1/tasks/", "client": ("10.0.0.1", 1)},
        {"type": "websocket", "path": "/ws/board"},
        {"type": "lifespan"},
    ):
        assert throttle(scope, None, None) is marker  # type: ignore[arg-type]


def test_connections_are_counted_per_address() -> None:
    """What the front protocol is given: a release per admitted connection, None past the
    cap; addresses are counted by machine."""
    admit = connection_counter(2)
    first, second = admit("10.0.0.1"), admit("::ffff:10.0.0.1")  # the same machine
    assert first is not None and first is second  # one tally per address, not per connection
    assert admit("10.0.0.1") is None
    assert admit("10.0.0.2") is not None
    first()
    assert admit("10.0.0.1") is not None


def test_protocol_classes_carry_the_header_timeout() -> None:
    front = http_protocol(header_timeout=10.0)
    assert issubclass(front, TasklineHttpProtocol) and front.header_timeout == 10.0
    plain = http_protocol(header_timeout=3.0, front=False)
    assert issubclass(plain, HeadTimedHttpProtocol) and plain.header_timeout == 3.0
    assert http_protocol(header_timeout=3.0, front=False) is plain  # made once per value
    assert http_protocol(header_timeout=0) is TasklineHttpProtocol  # 0: no timeout
    assert http_protocol(header_timeout=None, front=False).header_timeout is None

    def admit(host: str) -> None:
        return None

    counted = http_protocol(header_timeout=None, admit=admit)
    assert counted is not TasklineHttpProtocol and counted.admit is admit
    assert counted.header_timeout is None


class FakeLimits:
    """``getrlimit``/``setrlimit`` for RLIMIT_NOFILE, with a hard limit and maybe a refusal."""

    def __init__(self, soft: int, hard: int, *, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse
        self.calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.calls.append(limits)
        if self.refuse or limits[0] > self.hard:
            raise ValueError("not allowed")
        self.soft = limits[0]


def headroom(settings: Settings, fake: FakeLimits) -> tuple[Settings, list[str]]:
    return file_descriptor_headroom(settings, getrlimit=fake.getrlimit, setrlimit=fake.setrlimit)


def test_a_low_soft_limit_is_raised_as_far_as_the_caps_need() -> None:
    """Soft 1,024 with a hard limit of 524,288 (systemd's): raised to the total cap plus the
    headroom, no more; nothing to warn about."""
    fake = FakeLimits(1024, 524_288)
    settings, warnings = headroom(Settings(), fake)
    assert fake.calls == [(20_000 + FD_HEADROOM, 524_288)]
    assert settings.limit_ws_total == 20_000 and warnings == []


def test_a_limit_that_holds_the_caps_is_left_alone() -> None:
    fake = FakeLimits(1_048_576, 1_048_576)
    settings, warnings = headroom(Settings(), fake)
    assert fake.calls == [] and warnings == [] and settings.limit_ws_total == 20_000


def test_a_hard_limit_too_low_lowers_the_caps_and_says_so() -> None:
    """Soft 1,024 and hard 4,096: raised to 4,096; the total cap lowered to leave the headroom
    free (for HTTP, /health too, and the database), the per-address cap to leave half of it
    to other clients."""
    fake = FakeLimits(1024, 4096)
    settings, (warning,) = headroom(Settings(), fake)
    assert fake.calls == [(4096, 4096)]
    assert settings.limit_ws_total == 4096 - FD_HEADROOM
    assert settings.limit_connections_per_ip == 4096 - FD_HEADROOM // 2
    assert "TASKLINE_LIMIT_WS_TOTAL from 20000 to 3072" in warning
    assert "TASKLINE_LIMIT_CONNECTIONS_PER_IP from 12000 to 3584" in warning
    assert "ulimit -n" in warning


def test_a_limit_that_cannot_be_raised_is_reported_and_half_of_it_kept_free() -> None:
    """Soft 1,024 that may not be raised: two warnings; half the descriptors stay free of
    WebSockets (the headroom is at most half the limit), a quarter free of any one client."""
    fake = FakeLimits(1024, 1024 * 64, refuse=True)
    settings, warnings = headroom(Settings(), fake)
    assert len(warnings) == 2 and "could not raise the open-files limit" in warnings[0]
    assert (settings.limit_ws_total, settings.limit_connections_per_ip) == (512, 768)


def test_caps_set_lower_or_off_are_left_as_they_are() -> None:
    fake = FakeLimits(4096, 4096)
    chosen = Settings(limit_ws_total=100, limit_connections_per_ip=0)
    settings, warnings = headroom(chosen, fake)
    assert settings == chosen and warnings == []


def test_without_a_total_cap_the_limit_is_raised_but_nothing_is_lowered() -> None:
    for settings in (Settings(limits=False), Settings(limit_ws_total=0)):
        fake = FakeLimits(1024, 1_048_576)
        served, warnings = headroom(settings, fake)
        assert fake.calls == [(65_536, 1_048_576)]
        assert warnings == [] and served == settings
