"""SDK subscriptions against a real server: resume across restarts, gaps, refusals."""

import asyncio
from pathlib import Path

import pytest

from taskline.domain.events import WebSocketMessage
from taskline.sdk import AsyncClient, Backoff, CursorVoidError, NotFound, Subscription
from taskline.settings import Settings
from tests.support.server import LiveServer
from tests.support.waiting import async_wait_until

FAST_RETRY = Backoff(initial=0.05, maximum=0.5)


@pytest.fixture
def server(sqlite_server: LiveServer) -> LiveServer:
    """A server this test may restart (same port, same database): SQLite only."""
    return sqlite_server


def progress(count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"event_type": "custom", "data": {"name": "n", "value": start + n}} for n in range(count)
    ]


async def collect_until(
    subscription: Subscription, last_seq: int, into: list[WebSocketMessage]
) -> None:
    async for message in subscription:
        into.append(message)
        if message.seq is not None and message.seq >= last_seq:
            return


async def test_subscribe_resumes_across_a_server_restart(server: LiveServer) -> None:
    """Replay from 0, live events, a restart (events published meanwhile are replayed on
    resume): every seq arrives exactly once, in order, and the connection notices show it."""
    async with AsyncClient(server.url) as sdk:
        task = await sdk.create_task("Watched")
        for chunk in range(5):
            await sdk.publish(task.id, progress(10, chunk * 10))
        received: list[WebSocketMessage] = []
        async with sdk.subscribe(
            task.id, since=0, include_connection_messages=True, backoff=FAST_RETRY
        ) as events:
            follower = asyncio.create_task(collect_until(events, 151, received))
            await async_wait_until(
                lambda: any(m.seq == 51 for m in received), message="the replay up to seq 51"
            )
            await sdk.publish(task.id, progress(50, 50))  # live: seqs 52..101
            await async_wait_until(
                lambda: any(m.seq == 101 for m in received), message="live events up to seq 101"
            )
            await asyncio.to_thread(server.restart)
            await sdk.publish(task.id, progress(50, 100))  # 102..151, likely before the resume
            await asyncio.wait_for(follower, 30)
            assert events.connections == 2
            assert events.last_seq == 151
    seqs = [m.seq for m in received if m.seq is not None]
    assert seqs == list(range(1, 152))
    values = [m.data["value"] for m in received if m.event_type == "custom"]
    assert values == list(range(150))
    notices = [m.event_type.value for m in received if m.seq is None]
    assert notices.count("connection_established") == 2
    assert "connection_closed" in notices
    closed = next(m for m in received if m.event_type == "connection_closed")
    assert closed.data["resume_from"] == 101


async def test_since_none_starts_live_and_since_n_resumes_after_n(server: LiveServer) -> None:
    """Without since, only new events arrive; with since=N, events after N; connection
    messages are left out by default."""
    async with AsyncClient(server.url) as sdk:
        task = await sdk.create_task("Cursor")
        await sdk.publish(task.id, progress(5))  # seqs 2..6
        live: list[WebSocketMessage] = []
        async with sdk.subscribe(task.id) as events:
            follower = asyncio.create_task(collect_until(events, 8, live))
            await async_wait_until(
                lambda: events.last_seq is not None, message="the subscription to be live"
            )
            await sdk.publish(task.id, progress(2, 5))
            await asyncio.wait_for(follower, 10)
        assert [m.seq for m in live] == [7, 8]
        resumed: list[WebSocketMessage] = []
        async with sdk.subscribe(task.id, since=6) as events:
            await asyncio.wait_for(collect_until(events, 8, resumed), 10)
        assert [m.seq for m in resumed] == [7, 8]


async def test_a_trimmed_log_yields_a_gap_then_the_retained_events(tmp_path: Path) -> None:
    """With retention, resuming from a trimmed seq yields gap and snapshots (as connection
    messages) and then the retained events from first_available_seq on."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gap.db'}", event_retention=10
    )
    server = LiveServer(settings)
    server.start()
    try:
        async with AsyncClient(server.url) as sdk:
            task = await sdk.create_task("Trimmed")
            seqs = await sdk.publish(task.id, progress(30))
            received: list[WebSocketMessage] = []
            async with sdk.subscribe(task.id, since=2, include_connection_messages=True) as ev:
                await asyncio.wait_for(collect_until(ev, seqs[-1], received), 10)
    finally:
        server.stop()
    gap = next(m for m in received if m.event_type == "gap")
    assert gap.data["first_available_seq"] == seqs[-1] - 9
    assert [m.seq for m in received if m.seq is not None] == list(range(seqs[-1] - 9, seqs[-1] + 1))


async def test_unknown_tasks_and_void_cursors_end_the_subscription(server: LiveServer) -> None:
    """An unknown task raises NotFound; a cursor ahead of the log raises CursorVoidError;
    neither retries."""
    async with AsyncClient(server.url) as sdk:
        with pytest.raises(NotFound):
            async with sdk.subscribe("task_nothere") as events:
                await asyncio.wait_for(anext(events), 10)
        task = await sdk.create_task("Short log")
        subscription = sdk.subscribe(task.id, since=99)
        with pytest.raises(CursorVoidError) as void:
            await asyncio.wait_for(anext(subscription), 10)
        assert void.value.since == 99
        assert subscription.closed
        with pytest.raises(StopAsyncIteration):
            await anext(subscription)
