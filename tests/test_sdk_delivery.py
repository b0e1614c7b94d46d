"""SDK delivery against a real server that goes away: exactly once, in order, bounded."""

import asyncio
import time
from collections.abc import Iterator

import pytest

from taskline.sdk import AsyncClient, Backoff, DeliveryOptions, DeliveryTimeoutError, InvalidEvent
from taskline.settings import Settings
from tests.support.server import LiveServer

FAST_RETRY = Backoff(initial=0.05, maximum=0.5)


@pytest.fixture
def server(sqlite_url: str) -> Iterator[LiveServer]:
    """A server this test may stop and start (same port, same database)."""
    live = LiveServer(Settings(database_url=sqlite_url))
    live.start()
    try:
        yield live
    finally:
        live.stop()


async def test_a_server_restart_mid_run_stores_every_event_once_in_order(
    server: LiveServer,
) -> None:
    """2,000 events, the server stopped for several seconds in the middle (batches in
    flight and events produced while it is down): the log holds all 2,000, once, in order."""
    options = DeliveryOptions(backoff=FAST_RETRY)
    async with AsyncClient(server.url, delivery=options) as sdk:
        task = await sdk.create_task("Long run")
        sent: list[str] = []
        async with sdk.run(task.id, agent="agent_durable") as run:

            async def produce(first: int, last: int, pause_every: int, pause: float) -> None:
                for n in range(first, last):
                    sent.append(await run.emit("custom", {"name": "item", "value": n}))
                    if n % pause_every == 0:
                        await asyncio.sleep(pause)  # let batches leave while producing

            await produce(0, 700, 25, 0)
            await run.flush()
            stopping = asyncio.create_task(asyncio.to_thread(server.stop))
            await produce(700, 1300, 20, 0.002)  # overlaps the shutdown
            await stopping
            down_since = time.monotonic()
            await produce(1300, 2000, 100, 0.3)  # the server is down meanwhile
            await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - down_since)))
            assert run.pending > 0
            await asyncio.to_thread(server.start)
            await run.flush()
            assert run.connections >= 2
            assert run.pending == 0

        log = (await sdk.events(task.id, limit=10_000)).events
        assert (await sdk.get_task(task.id)).status == "completed"
    items = [e for e in log if e.event_type == "custom"]
    assert [e.id for e in items] == sent
    assert [e.data["value"] for e in items] == list(range(2000))
    assert len({e.seq for e in log}) == len(log)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert log[-1].event_type in {"agent_status_change", "task_completed"}
    statuses = [
        e.data["status"]
        for e in log
        if e.event_type == "agent_status_change" and e.run_id == run.run_id
    ]
    assert statuses[0] == "working" and statuses[-1] == "idle"
    assert "working" in statuses[1:-1]  # said again after the reconnect


async def test_a_full_buffer_makes_the_producer_wait_and_drops_nothing(
    server: LiveServer,
) -> None:
    """With the server down, publishing blocks once buffer_size events wait; it resumes as
    acknowledgements free room, and every event is stored."""
    options = DeliveryOptions(buffer_size=20, batch_size=5, backoff=FAST_RETRY)
    async with AsyncClient(server.url, delivery=options) as sdk:
        task = await sdk.create_task("Small buffer")
        async with sdk.run(task.id, agent="agent_small") as run:
            await asyncio.to_thread(server.stop)
            sent = [await run.emit("custom", {"name": "n", "value": n}) for n in range(20)]
            blocked = asyncio.create_task(run.emit("custom", {"name": "n", "value": 20}))
            await asyncio.sleep(0.5)
            assert not blocked.done()
            assert run.pending == 20
            await asyncio.to_thread(server.start)
            sent.append(await asyncio.wait_for(blocked, 20))
        log = (await sdk.events(task.id, types="custom")).events
    assert [e.id for e in log] == sent


async def test_flush_gives_up_after_its_timeout_and_delivery_resumes_later(
    server: LiveServer,
) -> None:
    """flush() raises DeliveryTimeoutError when the server stays away (after the client's
    flush_timeout, or the one given); the events are kept and delivered once it returns."""
    async with AsyncClient(server.url, delivery=DeliveryOptions(backoff=FAST_RETRY)) as sdk:
        task = await sdk.create_task("Patience")
        async with sdk.run(task.id, agent="agent_patient") as run:
            await asyncio.to_thread(server.stop)
            kept = await run.progress(0.5)
            started = time.monotonic()
            with pytest.raises(DeliveryTimeoutError) as timed_out:
                await run.flush(timeout=0.5)
            assert 0.4 < time.monotonic() - started < 5
            assert timed_out.value.unacknowledged >= 1 and timed_out.value.timed_out
            await asyncio.to_thread(server.start)
            await run.flush(timeout=None)  # no limit: until the server is back
        log = (await sdk.events(task.id)).events
    assert kept in {e.id for e in log}
    quick = DeliveryOptions(flush_timeout=2.0, backoff=FAST_RETRY)
    async with AsyncClient(server.url, delivery=quick) as sdk:
        task = await sdk.create_task("Client default")
        async with sdk.run(task.id, agent="agent_patient") as run:
            await asyncio.to_thread(server.stop)
            await run.progress(0.5)
            started = time.monotonic()
            with pytest.raises(DeliveryTimeoutError):
                await run.flush()  # the client's flush_timeout
            assert time.monotonic() - started >= 1.9
            await asyncio.to_thread(server.start)
            await run.flush(timeout=30)


async def test_an_event_too_large_for_one_frame_is_refused_at_once(server: LiveServer) -> None:
    """An event over max_batch_bytes raises InvalidEvent before it is queued; large events
    under it are batched into frames the server accepts."""
    async with AsyncClient(server.url) as sdk:
        task = await sdk.create_task("Big")
        async with sdk.run(task.id, agent="agent_big") as run:
            with pytest.raises(InvalidEvent, match="bytes"):
                await run.emit("custom", {"name": "blob", "value": "x" * 300_000})
            sent = [
                await run.emit("custom", {"name": "chunk", "value": "y" * 60_000})
                for _ in range(10)
            ]
            # Sizes count encoded bytes: 20,000 "é" are 120,000 bytes on the wire.
            sent += [
                await run.emit("custom", {"name": "accents", "value": "é" * 20_000})
                for _ in range(5)
            ]
        log = (await sdk.events(task.id, types="custom")).events
    assert [e.id for e in log] == sent
