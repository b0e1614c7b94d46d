"""The detail panel across drops: every event shown exactly once after a server restart (the
indicator going through reconnecting back to connected), a trimmed log (gap) and a cursor
from another log (4409)."""

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from taskline.domain.actors import Actor
from taskline.domain.events import EventIn
from taskline.service.recorder import record_events
from taskline.settings import Settings
from taskline.store.database import Database
from tests.support.browser import (
    SCALE,
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.rest import create_task
from tests.support.server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = playwright_api().expect
NewPage = Callable[..., "Page"]


class Publisher(threading.Thread):
    """Publishes numbered events one by one, retrying each (same event id, so a retry after a
    lost answer stores nothing twice) until the server takes it."""

    def __init__(self, url: str, task_id: str) -> None:
        super().__init__(name="publisher", daemon=True)
        self.url = url
        self.task_id = task_id
        self.stored = 0
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stopping.is_set():
                event = {
                    "id": f"evt_restart_{self.stored}",
                    "event_type": "custom",
                    "data": {"name": "tick", "value": self.stored},
                }
                try:
                    response = client.post(f"/api/v1/tasks/{self.task_id}/events", json=[event])
                except httpx.TransportError:
                    self.failures += 1
                    time.sleep(0.05)
                    continue
                if response.status_code == 200:
                    self.stored += 1
                else:
                    self.failures += 1
                time.sleep(0.02)

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.stored < count:
            assert time.monotonic() < deadline, f"only {self.stored} of {count} events stored"
            time.sleep(0.02)


def test_every_event_shows_once_across_a_server_restart(tmp_path: Path, new_page: NewPage) -> None:
    """Restart the server while an agent publishes: after reconnecting, the timeline holds
    each seq once, none missing, and the indicator went reconnecting → connected."""
    server = LiveServer(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            task = create_task(client, "Survive a restart", status="in_progress")
        page = new_page(f"{server.url}/#/tasks/{task['id']}")
        status = page.locator("#connection")
        expect(status).to_have_attribute("data-state", "connected")
        expect(page.locator('#timeline li[data-seq="1"]')).to_be_visible()

        publisher = Publisher(server.url, task["id"])
        publisher.start()
        try:
            publisher.wait_for(20, timeout=20 * SCALE)
            before = publisher.stored
            with ThreadPoolExecutor(1) as pool:
                restart = pool.submit(server.restart)
                page.wait_for_function(
                    "() => __taskline.app.status.history.includes('reconnecting')",
                    timeout=20_000 * SCALE,
                )
                restart.result(timeout=60)
            expect(status).to_have_attribute("data-state", "connected", timeout=20_000 * SCALE)
            publisher.wait_for(before + 30, timeout=30 * SCALE)
        finally:
            publisher.stopping.set()
            publisher.join(10)

        with httpx.Client(base_url=server.url, timeout=10) as client:
            log = client.get(f"/api/v1/tasks/{task['id']}/events").json()
        last = log["last_seq"]
        assert last == 1 + publisher.stored  # task_created, then each tick stored once
        expect(page.locator(f'#timeline li[data-seq="{last}"]')).to_be_visible(
            timeout=10_000 * SCALE
        )
        seqs = page.eval_on_selector_all(
            "#timeline li[data-seq]", "rows => rows.map(r => +r.dataset.seq)"
        )
        assert seqs == list(range(1, last + 1)), "an event is missing or shown twice"
        ticks = page.eval_on_selector_all(
            '#timeline li[data-type="custom"] .tl-text', "rows => rows.map(r => r.textContent)"
        )
        assert ticks == [f"tick: {n}" for n in range(publisher.stored)]
        history = page.evaluate("__taskline.app.status.history")
        assert history[-1] == "connected", history
        assert "reconnecting" in history[history.index("connected") :], history
    finally:
        server.stop()


def _append_while_down(
    url: str, task_id: str, events: list[dict[str, Any]], keep_last: int
) -> None:
    """Write events to the log through the application layer's recorder, as another server
    process would while the viewer's server is down (trimming the log to ``keep_last``)."""

    async def write() -> None:
        database = Database(url)
        try:
            async with database.write() as session:
                await record_events(
                    session,
                    task_id,
                    [EventIn.model_validate(e) for e in events],
                    actor=Actor.system("test"),
                    keep_last=keep_last,
                )
        finally:
            await database.dispose()

    # in a thread of its own: Playwright's sync API runs an event loop in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(write())).result(timeout=30)


def test_a_trimmed_log_after_a_drop_gives_a_gap_and_fresh_figures(
    tmp_path: Path, new_page: NewPage
) -> None:
    """Events missed while away were trimmed: the panel says so, shows the retained events
    once and the task's current figures."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    server = LiveServer(Settings(database_url=url, event_retention=5))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            task = create_task(client, "Trimmed while away", status="in_progress")
        page = new_page(f"{server.url}/#/tasks/{task['id']}")
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        server.stop()
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        ticks = [{"event_type": "custom", "data": {"name": "tick", "value": n}} for n in range(20)]
        progress = {"event_type": "progress_update", "data": {"progress": 0.8, "message": "late"}}
        _append_while_down(url, task["id"], [*ticks, progress], keep_last=5)
        server.start()
        expect(page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=20_000 * SCALE
        )
        expect(page.locator("#detail-progress-value")).to_have_text("80%")
        expect(page.locator('#timeline li[data-seq="22"]')).to_be_visible()
        seqs = page.eval_on_selector_all(
            "#timeline li[data-seq]", "rows => rows.map(r => +r.dataset.seq)"
        )
        assert seqs == [1, 18, 19, 20, 21, 22]  # what was seen, then what the log still has
        expect(page.locator("#timeline-trimmed")).to_have_text(
            "Events before #18 were trimmed from the log."
        )
    finally:
        server.stop()


def test_a_cursor_from_another_log_reloads_the_panel(tmp_path: Path, new_page: NewPage) -> None:
    """The server comes back on another database (another log epoch) holding the same task:
    the stream refuses the old cursor (4409) and the panel reloads from the new log."""
    first = LiveServer(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"))
    other_url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    first.start()
    try:
        with httpx.Client(base_url=first.url, timeout=10) as client:
            task = create_task(client, "Original")
            client.post(
                f"/api/v1/tasks/{task['id']}/events",
                json=[
                    {"event_type": "custom", "data": {"name": "tick", "value": n}} for n in range(5)
                ],
            )
            exported = client.get(f"/api/v1/tasks/{task['id']}/export/json").content
        # the other database holds the same task, changed, with a log of its own
        other = LiveServer(Settings(database_url=other_url))
        other.start()
        try:
            with httpx.Client(base_url=other.url, timeout=10) as client:
                client.post(
                    "/api/v1/tasks/import",
                    content=exported,
                    headers={"Content-Type": "application/json"},
                ).raise_for_status()
                client.patch(f"/api/v1/tasks/{task['id']}", json={"title": "From another log"})
        finally:
            other.stop()

        page = new_page(f"{first.url}/#/tasks/{task['id']}")
        expect(page.locator("#detail-title")).to_have_text("Original")
        expect(page.locator('#timeline li[data-seq="6"]')).to_be_visible()
        first.stop()
        first.settings = Settings(database_url=other_url)  # same port, another log
        first.start()
        expect(page.locator("#detail-title")).to_have_text(
            "From another log", timeout=20_000 * SCALE
        )
        expect(
            page.get_by_role("status").filter(has_text="The event log was reset")
        ).to_be_visible()
        expect(page.locator("#timeline li[data-seq]")).to_have_count(1)
        expect(page.locator('#timeline li[data-seq="1"]')).to_have_attribute(
            "data-type", "task_updated"
        )
    finally:
        first.stop()
