"""A task worked through MCP, watched in real Chromium: its progress, each tool call (running,
then done with its result), its messages and its completion appear live in the open panel,
as an SDK agent's do."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from tests.support.browser import (
    LIVE_MS,
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.mcp import mcp_session, tool_json
from tests.support.rest import create_task
from tests.support.server import LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = playwright_api().expect
NewPage = Callable[..., "Page"]


def call(server: LiveServer, name: str, arguments: dict[str, Any]) -> Any:
    """One MCP tool call in its own session, on a thread of its own (the page has the loop)."""

    async def go() -> Any:
        async with mcp_session(server.url, None) as session:
            return tool_json(await session.call_tool(name, arguments))

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_an_mcp_agent_works_live_in_the_task_panel(
    sqlite_server: LiveServer, new_page: NewPage
) -> None:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        task = create_task(client, "Worked over MCP")
    tid = task["id"]
    page = new_page(f"{sqlite_server.url}/#/tasks/{tid}")
    expect(page.locator("#detail-title")).to_have_text("Worked over MCP")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")

    call(sqlite_server, "report_progress", {"task_id": tid, "progress": 0.6, "message": "Halfway"})
    expect(page.locator("#detail-progress-value")).to_have_text("60%", timeout=LIVE_MS)
    expect(page.locator("#detail-progress-message")).to_have_text("Halfway", timeout=LIVE_MS)
    expect(page.locator("#detail-status")).to_have_attribute(
        "data-status", "in_progress", timeout=LIVE_MS
    )
    card = page.locator(".tool-card", has=page.locator(".tool-name", has_text="report_progress"))
    expect(card).to_have_attribute("data-status", "done", timeout=LIVE_MS)
    expect(card.locator(".tool-args pre")).to_contain_text("Halfway")
    expect(card.locator(".tool-result")).to_contain_text('"progress": 0.6')

    call(sqlite_server, "post_message", {"task_id": tid, "content": "Found three errors"})
    expect(page.locator("#conversation")).to_contain_text("Found three errors", timeout=LIVE_MS)

    call(sqlite_server, "complete_task", {"task_id": tid, "result": {"errors": 3}})
    expect(page.locator("#detail-status")).to_have_attribute(
        "data-status", "completed", timeout=LIVE_MS
    )
    done = page.locator(".tool-card", has=page.locator(".tool-name", has_text="complete_task"))
    expect(done).to_have_attribute("data-status", "done", timeout=LIVE_MS)
    expect(done.locator(".tool-args pre")).to_contain_text('"errors": 3')
    expect(page.locator('#timeline li[data-type="task_completed"]')).to_have_count(1)
    expect(page.locator(".tool-card")).to_have_count(3)
