"""A claimed task in real Chromium: the card and the detail panel say who holds it and until
when, live, and stop saying it once the task is released."""

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.browser import (
    LIVE_MS,
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = playwright_api().expect
NewPage = Callable[..., "Page"]


@pytest.fixture
def client(sqlite_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        yield http


def test_the_card_and_the_panel_show_the_lease(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    client.post("/api/v1/agents/", json={"id": "agent_claimer", "name": "Claimer"})
    task_id = client.post("/api/v1/tasks/", json={"title": "Claim me"}).json()["id"]
    page: Page = new_page(f"{sqlite_server.url}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    card = page.locator(".task-card").filter(has_text="Claim me")
    expect(card).to_be_visible()
    expect(card.locator(".lease")).to_be_hidden()
    claimed = client.post("/api/v1/tasks/claim", json={"agent_id": "agent_claimer"})
    assert claimed.status_code == 200, claimed.text
    expect(card.locator(".lease")).to_have_text(
        _held_until("Claimer", claimed.json()["lease"]["expires_at"], page), timeout=LIVE_MS
    )
    card.locator(".task-link").click()
    lease = page.locator("#detail-lease")
    expect(lease).to_contain_text("held by Claimer until", timeout=LIVE_MS)
    client.post(f"/api/v1/tasks/{task_id}/release")
    expect(lease).to_be_hidden(timeout=LIVE_MS)


def _held_until(name: str, expires_at: str, page: "Page") -> str:
    """The text the page shows: the expiry in the browser's local time, to the minute."""
    clock = page.evaluate(
        "(when) => { const d = new Date(when); const p = (n) => String(n).padStart(2, '0');"
        " return `${p(d.getHours())}:${p(d.getMinutes())}`; }",
        expires_at,
    )
    return f"held by {name} until {clock}"
