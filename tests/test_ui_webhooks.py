"""The webhooks panel in real Chromium (an admin: the suite's servers let everyone be one):
add a webhook (its secret shown once), send a test delivery to a real receiver and see that
it was delivered, turn the webhook off."""

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from tests.support.browser import (
    LIVE_MS,
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.receiver import receiver
from tests.support.server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = playwright_api().expect
NewPage = Callable[..., "Page"]


def test_add_test_and_turn_off_a_webhook(sqlite_server: LiveServer, new_page: NewPage) -> None:
    with receiver() as hooks:
        page: Page = new_page(f"{sqlite_server.url}/")
        panel = page.locator("#webhooks")
        expect(panel).to_be_visible()
        expect(page.locator("#webhooks-empty")).to_be_visible()
        page.fill("#webhook-url", hooks.url())
        page.fill("#webhook-events", "task_completed, request.*")
        page.select_option("#webhook-format", "slack")
        page.click("#webhook-form button[type=submit]")
        expect(page.locator("#webhooks-secret")).to_contain_text("whsec_", timeout=LIVE_MS)
        row = panel.locator(".webhook").filter(has_text=hooks.url())
        expect(row).to_contain_text("task_completed, request.* · slack")
        row.get_by_role("button", name="Test").click()
        expect(row.locator(".webhook-result")).to_have_text("delivered (HTTP 200)", timeout=LIVE_MS)
        [got] = hooks.on("/hook")
        assert "test delivery" in got.json()["text"]
        row.get_by_role("button", name="Turn off").click()
        expect(row).to_have_attribute("data-enabled", "false", timeout=LIVE_MS)
        listed = httpx.get(f"{sqlite_server.url}/api/v1/webhooks/").json()["webhooks"]
        assert [w["enabled"] for w in listed] == [False]
