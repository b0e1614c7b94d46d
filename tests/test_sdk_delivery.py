"""SDK delivery against a real server that goes away: exactly once, in order, bounded."""

import asyncio
import logging
import threading
import time
from typing import Any, Self

import pytest

from taskline.sdk import AsyncClient, Backoff, DeliveryOptions, DeliveryTimeoutError, InvalidEvent
from tests.support.server import LiveServer
from tests.support.waiting import WAIT, async_wait_until

FAST_RETRY = Backoff(initial=0.05, maximum=0.5)


@pytest.fixture
def server(sqlite_server: LiveServer) -> LiveServer:
    """A server this test may stop and start (same port, same database): SQLite only."""
    return sqlite_server


class HeldBatches:
    """Makes a live server hold the agents' batches before storing them, until released.

    The server runs in a thread of this process; this wraps its ``EventService.publish``
    (the agent connection looks it up for every batch). A held batch is in flight for sure: sent
    by the SDK, received by the server, not stored and not acknowledged.
    """

    def __init__(self, server: LiveServer) -> None:
        assert server.app is not None
        self._ingest = server.app.state.services.events
        self._publish = self._ingest.publish
        self._released = threading.Event()
        self.held = 0  #: batches that were made to wait
        self.stored_late = 0  #: of those, stored once released

    def __enter__(self) -> Self:
        self._ingest.publish = self._held_publish
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        del self._ingest.publish

    def release(self) -> None:
        self._released.set()

    async def _held_publish(
        self, task_id: str, events: Any, *, actor: Any, source: str | None = None
    ) -> Any:
        held = (source or "").startswith("agent:") and not self._released.is_set()
        if held:
            self.held += 1
            # runs in the server's event loop; the test releases it from its own thread
            deadline = time.monotonic() + WAIT
            while not self._released.is_set():
                if time.monotonic() > deadline:
                    raise RuntimeError("a held batch was never released")
                await asyncio.sleep(0.01)
        committed = await self._publish(task_id, events, actor=actor, source=source)
        if held:
            self.stored_late += 1
        return committed


def sdk_lines(caplog: pytest.LogCaptureFixture, text: str) -> int:
    """How many ``taskline.sdk`` log lines so far contain ``text``."""
    return sum(r.name == "taskline.sdk" and text in r.getMessage() for r in caplog.records)


async def test_a_server_restart_mid_run_stores_every_event_once_in_order(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """2,000 events, the server stopped in the middle (batches in flight and events produced
    while it is down): the log holds all 2,000, once, in order.

    Every step waits for what it needs to have happened, never for a duration: the server
    holds a batch when it is told to stop (so batches are in flight, and the held one is
    stored after the connection is gone: its ack is lost), the server is down (its thread
    ended), the SDK's reconnection attempts fail several times while events pile up, and
    after the restart the SDK has reconnected and said "working" again before the flush."""
    caplog.set_level(logging.DEBUG, logger="taskline.sdk")
    options = DeliveryOptions(backoff=FAST_RETRY)
    async with AsyncClient(server.url, delivery=options) as sdk:
        task = await sdk.create_task("Long run")
        sent: list[str] = []
        async with sdk.run(task.id, agent="agent_durable") as run:

            async def produce(first: int, last: int) -> None:
                for n in range(first, last):
                    sent.append(await run.emit("custom", {"name": "item", "value": n}))
                    if n % 25 == 0:
                        await asyncio.sleep(0)  # let the writer send batches while producing

            async def said_working_again() -> bool:
                page = await sdk.events(task.id, types="agent_status_change", limit=10_000)
                said = [e.data["status"] for e in page.events if e.run_id == run.run_id]
                return said.count("working") >= 2

            await produce(0, 700)
            await run.flush()
            with HeldBatches(server) as hold:
                await produce(700, 1000)
                await async_wait_until(lambda: hold.held >= 1, message="the server to hold a batch")
                lost = sdk_lines(caplog, "connection lost")
                stopping = asyncio.create_task(asyncio.to_thread(server.stop))
                await produce(1000, 1300)  # overlaps the shutdown
                await async_wait_until(
                    lambda: sdk_lines(caplog, "connection lost") > lost or stopping.done(),
                    message="the SDK to see its connection close",
                )
                hold.release()  # the held batch is stored now; its ack cannot arrive
                await stopping
            assert not server.running
            assert hold.stored_late >= 1
            refused = sdk_lines(caplog, "cannot connect")
            await produce(1300, 1650)  # the server is down meanwhile
            await async_wait_until(
                lambda: sdk_lines(caplog, "cannot connect") >= refused + 3,
                message="three failed reconnection attempts while the server is down",
            )
            await produce(1650, 2000)
            assert run.pending > 0
            await asyncio.to_thread(server.start)
            # The SDK says "working" again once reconnected; wait for that so the flush below
            # covers it (an event queued after flush() started is not part of that flush).
            await async_wait_until(
                said_working_again,
                message=lambda: f"the run to reconnect (connections={run.connections})",
            )
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
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server down, publishing blocks once buffer_size events wait; it resumes as
    acknowledgements free room, and every event is stored."""
    caplog.set_level(logging.DEBUG, logger="taskline.sdk")
    options = DeliveryOptions(buffer_size=20, batch_size=5, backoff=FAST_RETRY)
    async with AsyncClient(server.url, delivery=options) as sdk:
        task = await sdk.create_task("Small buffer")
        async with sdk.run(task.id, agent="agent_small") as run:
            await asyncio.to_thread(server.stop)
            sent = [await run.emit("custom", {"name": "n", "value": n}) for n in range(20)]
            refused = sdk_lines(caplog, "cannot connect")
            blocked = asyncio.create_task(run.emit("custom", {"name": "n", "value": 20}))
            # Staying blocked can only be watched for a while: here until the SDK has failed
            # to reconnect twice more (nothing can free room meanwhile), or the producer
            # wrongly returns. A slow machine makes the window longer, never the test fail.
            await async_wait_until(
                lambda: blocked.done() or sdk_lines(caplog, "cannot connect") >= refused + 2,
                message="two more failed reconnection attempts",
            )
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
            assert time.monotonic() - started > 0.4  # it waited (no upper bound: load)
            assert "within 0.5 s" in str(timed_out.value)  # the timeout given, not the default
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
            with pytest.raises(DeliveryTimeoutError) as timed_out:
                await run.flush()  # the client's flush_timeout
            assert time.monotonic() - started >= 1.9
            assert "within 2 s" in str(timed_out.value)
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
