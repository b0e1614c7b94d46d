"""What a rate limit costs per request: this process's own bucket against the bucket in
Redis that every process shares (one Lua script call, one round trip).

Measured on the throttle itself (:class:`~taskline.api.throttle.Throttle` in front of an app
that answers nothing), so that the request's own work does not hide the difference: an
unsafe request's trip through the throttle, one at a time (the latency a request pays) and
``--concurrency`` at once (the throughput of one process). A bucket large enough never to
refuse. Run: ``.venv/bin/python benchmarks/limits.py [--redis-url URL] [--seconds S]``.
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

from taskline.api.limits import Rate
from taskline.api.throttle import Throttle
from taskline.bus import RedisRates
from taskline.domain.actors import Actor
from taskline.domain.ids import new_id

RATE = Rate("write", 1e9, 1_000_000_000)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def nothing() -> Message:  # pragma: no cover - the app reads nothing
    return {"type": "http.disconnect"}


async def ignore(message: Message) -> None:  # pragma: no cover - the app sends nothing
    return None


def scope_of(principal: int) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/tasks/",
        "client": ("10.0.0.1", 1),
        "taskline.actor": Actor.parse(f"token:tok_{principal}"),
    }


async def rate(call: Callable[[Scope], Awaitable[None]], seconds: float, concurrency: int) -> float:
    """Requests per second through ``call`` for ``seconds``, ``concurrency`` at once."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal done
        scope = scope_of(n)
        while time.perf_counter() < deadline:
            await call(scope)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    shared = RedisRates(options.redis_url, prefix=new_id("bench"))
    await shared.start()
    try:
        local = Throttle(app, publish=None, writes=RATE)
        redis = Throttle(app, publish=None, writes=RATE, shared=shared)

        async def through_local(scope: Scope) -> None:
            await local(scope, nothing, ignore)

        async def through_redis(scope: Scope) -> None:
            await redis(scope, nothing, ignore)

        print(f"unsafe requests through the throttle ({options.seconds:g} s each)")
        for concurrency in (1, options.concurrency):
            own = await rate(through_local, options.seconds, concurrency)
            shared_rate = await rate(through_redis, options.seconds, concurrency)
            print(
                f"  {concurrency:>3} at once: own bucket {own:>10,.0f}/s ({1e6 / own:6.1f} µs), "
                f"Redis bucket {shared_rate:>8,.0f}/s ({1e6 / shared_rate:6.1f} µs), "
                f"ratio {own / shared_rate:5.1f}x"
            )
        if redis.fallback.down:
            print("  (Redis did not answer: the Redis figures are the fallback's)")
    finally:
        await shared.close()


if __name__ == "__main__":
    asyncio.run(main())
