"""How the settings become limits, without a server: the throttle and the frame limit (or
none of them), the protocol classes with their header timeout, and the warnings of a
flood."""

import logging

import pytest

from taskline.api.limits import Rate
from taskline.api.throttle import Throttle, WarnEvery, frame_limit
from taskline.front_protocol import HeadTimedHttpProtocol, TasklineHttpProtocol, http_protocol
from taskline.server import throttled
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


def test_limits_off_means_no_throttle_and_no_frame_limit() -> None:
    """TASKLINE_LIMITS=false (or every limit 0) leaves the app as it is."""

    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        pass

    assert throttled(app, Settings(limits=False)) is app  # type: ignore[arg-type]
    assert frame_limit(Settings(limits=False)) is None
    nothing = Settings(
        limit_publish_rate=0,
        limit_write_rate=0,
        limit_ws_per_principal=0,
        limit_ws_per_ip=0,
        limit_ws_total=0,
        limit_ws_frame_rate=0,
    )
    assert throttled(app, nothing) is app  # type: ignore[arg-type]
    assert frame_limit(nothing) is None
    default = throttled(app, Settings())  # type: ignore[arg-type]
    assert isinstance(default, Throttle)
    assert default.publish is not None and default.publish.rate == Rate("publish", 200, 1000)
    assert default.writes is not None and default.writes.rate == Rate("write", 50, 200)
    assert default.sockets is not None
    assert (default.sockets.per_principal, default.sockets.per_address) == (1000, 10_000)
    assert default.sockets.total == 20_000
    assert frame_limit(Settings()) == Rate("frames", 200, 2000)


def test_protocol_classes_carry_the_header_timeout() -> None:
    front = http_protocol(header_timeout=10.0)
    assert issubclass(front, TasklineHttpProtocol) and front.header_timeout == 10.0
    plain = http_protocol(header_timeout=3.0, front=False)
    assert issubclass(plain, HeadTimedHttpProtocol) and plain.header_timeout == 3.0
    assert http_protocol(header_timeout=3.0, front=False) is plain  # made once per value
    assert http_protocol(header_timeout=0) is TasklineHttpProtocol  # 0: no timeout
    assert http_protocol(header_timeout=None, front=False).header_timeout is None
