"""The board in real Chromium against a real server: live tasks, creation, filters, agents."""

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
from tests.support.rest import create_task, publish
from tests.support.server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = playwright_api().expect
NewPage = Callable[..., "Page"]


@pytest.fixture
def client(sqlite_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        yield http


def open_board(new_page: NewPage, server: LiveServer, **options: object) -> "Page":
    page = new_page(f"{server.url}/", **options)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#board-count")).to_contain_text("task")
    return page


def card(page: "Page", title: str):  # type: ignore[no-untyped-def]
    return page.locator(".task-card").filter(has_text=title)


def test_a_task_created_in_one_page_appears_on_another_board_live(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Create a task with the form; a second browser's board shows it without reloading."""
    first = open_board(new_page, sqlite_server)
    second = open_board(new_page, sqlite_server)
    first.locator("#new-title").fill("Write the changelog")
    first.locator("#new-priority").select_option("high")
    first.locator("#new-tags").fill("docs, release")
    first.get_by_role("button", name="Create task").click()
    expect(card(first, "Write the changelog")).to_be_visible()
    expect(card(second, "Write the changelog")).to_be_visible(timeout=LIVE_MS)
    expect(card(second, "Write the changelog").locator(".tags")).to_have_text("docsrelease")
    expect(first.locator("#new-title")).to_have_value("")
    [stored] = client.get("/api/v1/tasks/").json()["items"]
    assert stored["priority"] == "high" and stored["tags"] == ["docs", "release"]

    # the card follows the task: progress, confidence, status, deletion
    publish(
        client,
        stored["id"],
        {"event_type": "progress_update", "data": {"progress": 0.5, "confidence": 0.9}},
    )
    expect(card(second, "Write the changelog").locator(".fact-progress")).to_have_text(
        "50%", timeout=LIVE_MS
    )
    expect(card(second, "Write the changelog").locator(".fact-confidence-value")).to_have_text(
        "90%"
    )
    client.patch(f"/api/v1/tasks/{stored['id']}", json={"status": "in_progress"})
    expect(card(second, "Write the changelog").locator(".status-badge")).to_have_text(
        "In progress", timeout=LIVE_MS
    )
    client.delete(f"/api/v1/tasks/{stored['id']}")
    expect(card(second, "Write the changelog")).to_have_count(0, timeout=LIVE_MS)


def test_an_empty_title_is_refused_with_a_message(
    sqlite_server: LiveServer, new_page: NewPage
) -> None:
    """Submitting without a title explains why and creates nothing."""
    page = open_board(new_page, sqlite_server)
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("alert")).to_contain_text("give it a title")
    expect(page.locator("#new-title")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#new-title")).to_be_focused()


def test_filters_and_search_narrow_the_board(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Status, tag and text filters apply to the list and to tasks that change live."""
    create_task(client, "Fix the login bug", tags=["bug"], status="in_progress")
    create_task(client, "Plan the offsite", tags=["people"])
    later = create_task(client, "Review pull requests", tags=["bug"])
    page = open_board(new_page, sqlite_server)
    expect(page.locator(".task-card")).to_have_count(3)

    page.get_by_label("Status", exact=True).select_option("in_progress")
    expect(page.locator(".task-card")).to_have_count(1)
    expect(card(page, "Fix the login bug")).to_be_visible()
    # a task that starts while the filter is on joins the list live
    client.patch(f"/api/v1/tasks/{later['id']}", json={"status": "in_progress"})
    expect(card(page, "Review pull requests")).to_be_visible(timeout=LIVE_MS)
    page.get_by_label("Status", exact=True).select_option("")

    page.get_by_label("Tag", exact=True).select_option("people")
    expect(page.locator(".task-card")).to_have_count(1)
    page.get_by_label("Tag", exact=True).select_option("")

    page.get_by_label("Search", exact=True).fill("pull")
    expect(page.locator(".task-card")).to_have_count(1)
    expect(card(page, "Review pull requests")).to_be_visible()
    page.get_by_label("Search", exact=True).fill("nothing like this")
    expect(page.locator("#board-empty")).to_be_visible()


def test_agents_strip_follows_agent_status_live(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Agents are listed with their status; agent_status_change updates it and the card."""
    agent = client.post("/api/v1/agents/", json={"name": "Scout", "kind": "research"}).json()
    task = create_task(client, "Scout the docs", assigned_agent_id=agent["id"])
    page = open_board(new_page, sqlite_server)
    strip = page.locator(f'.agent[data-agent-id="{agent["id"]}"]')
    expect(strip).to_contain_text("Scout")
    expect(strip).to_have_attribute("data-status", "idle")
    expect(card(page, "Scout the docs").locator(".fact-agent")).to_have_text("Scout · Idle")

    publish(
        client,
        task["id"],
        {
            "event_type": "agent_status_change",
            "data": {"agent_id": agent["id"], "status": "working"},
        },
    )
    expect(strip).to_have_attribute("data-status", "working", timeout=LIVE_MS)
    expect(strip.locator(".agent-status")).to_have_text("Working")
    expect(card(page, "Scout the docs").locator(".fact-agent")).to_have_text("Scout · Working")

    page.get_by_label("Agent", exact=True).select_option(agent["id"])
    expect(page.locator(".task-card")).to_have_count(1)


def test_the_board_is_keyboard_operable(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """A task's title is a link: Enter opens its panel, Escape goes back to the board."""
    task = create_task(client, "Reach me by keyboard")
    page = open_board(new_page, sqlite_server)
    link = card(page, "Reach me by keyboard").get_by_role("link", name="Reach me by keyboard")
    link.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{sqlite_server.url}/#/tasks/{task['id']}")
    expect(page.locator("#detail-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#board-view")).to_be_visible()
    expect(link).to_be_focused()
