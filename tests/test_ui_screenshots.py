"""Screenshots of the board and the task detail panel, light and dark, laptop and phone
widths, written to artifacts/screenshots/ for a reviewer (README, "Web UI")."""

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from tests.support.browser import (
    SCREENSHOTS,
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
LAPTOP = (1280, 860)
PHONE = (390, 844)


def seed_board(client: httpx.Client) -> str:
    """A board that shows every state, and one task an agent is busy with; returns its id."""
    agent = client.post("/api/v1/agents/", json={"name": "Reviewer", "kind": "docs"}).json()
    helper = client.post("/api/v1/agents/", json={"name": "Triage bot", "kind": "issues"}).json()
    create_task(
        client,
        "Prepare the release notes",
        status="completed",
        progress=1,
        confidence=0.95,
        tags=["release"],
    )
    create_task(
        client, "Triage new issues", priority="low", tags=["triage"], assigned_agent_id=helper["id"]
    )
    paused = create_task(
        client,
        "Migrate the CI runners",
        priority="high",
        status="in_progress",
        progress=0.3,
        confidence=0.6,
        tags=["infra"],
    )
    client.post(f"/api/v1/tasks/{paused['id']}/pause")
    failed = create_task(
        client,
        "Rotate the signing keys",
        priority="urgent",
        status="in_progress",
        progress=0.1,
        tags=["security"],
    )
    client.patch(f"/api/v1/tasks/{failed['id']}", json={"status": "failed"})
    task = create_task(
        client,
        "Review the project documentation",
        description="Read every document, report broken links and open TODOs.",
        priority="high",
        status="in_progress",
        assigned_agent_id=agent["id"],
        tags=["docs", "review"],
        sections=[
            {
                "title": "Plan",
                "subtasks": [
                    {"title": "List the files", "done": True},
                    {"title": "Pick a reading order", "done": True},
                ],
            },
            {
                "title": "Read",
                "subtasks": [{"title": "README.md", "done": True}, {"title": "design.md"}],
            },
            {"title": "Report", "subtasks": [{"title": "Write the summary"}]},
        ],
    )
    tid = task["id"]
    publish(
        client,
        tid,
        {
            "event_type": "agent_status_change",
            "data": {"agent_id": agent["id"], "status": "working"},
        },
        {
            "event_type": "state.snapshot",
            "data": {
                "snapshot": {
                    "files": {"README.md": "read", "design.md": "reading"},
                    "broken_links": [],
                    "todo": 0,
                }
            },
        },
        {
            "event_type": "tool_call.start",
            "data": {
                "tool_call_id": "call_1",
                "name": "list_files",
                "args": {"glob": "docs/**/*.md"},
            },
        },
        {
            "event_type": "tool_call.end",
            "data": {
                "tool_call_id": "call_1",
                "result": ["README.md", "docs/design.md", "docs/style.md"],
                "duration_ms": 84,
            },
        },
        {
            "event_type": "tool_call.start",
            "data": {
                "tool_call_id": "call_2",
                "name": "check_link",
                "args": {"url": "docs/old-guide.md"},
            },
        },
        {
            "event_type": "tool_call.end",
            "data": {
                "tool_call_id": "call_2",
                "error": "404: docs/old-guide.md does not exist",
                "duration_ms": 312,
            },
        },
        {
            "event_type": "state.patch",
            "data": {
                "patch": [{"op": "add", "path": "/broken_links/-", "value": "docs/old-guide.md"}]
            },
        },
        {"event_type": "message.start", "data": {"message_id": "m1"}},
        {
            "event_type": "message.delta",
            "data": {"message_id": "m1", "delta": "README.md is in good shape. "},
        },
        {
            "event_type": "message.delta",
            "data": {
                "message_id": "m1",
                "delta": "One link in design.md points to a page that no longer exists.",
            },
        },
        {"event_type": "message.end", "data": {"message_id": "m1"}},
        {
            "event_type": "progress_update",
            "data": {"progress": 0.62, "message": "Reading design.md", "confidence": 0.78},
        },
        {
            "event_type": "tool_call.start",
            "data": {
                "tool_call_id": "call_3",
                "name": "read_file",
                "args": {"path": "docs/design.md"},
            },
        },
        {"event_type": "message.start", "data": {"message_id": "m2"}},
        {
            "event_type": "message.delta",
            "data": {"message_id": "m2", "delta": "Now reading the design notes"},
        },
    )
    client.post(
        f"/api/v1/tasks/{tid}/messages",
        json={"author": "ana", "content": "Skip the changelog, it is generated."},
    )
    return tid


def shoot(page: "Page", name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True, animations="disabled")


def test_screenshots_of_board_and_detail(sqlite_server: LiveServer, new_page: NewPage) -> None:
    """Board and detail panel, light and dark, laptop and phone: written for review."""
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as client:
        task_id = seed_board(client)
    for scheme in ("light", "dark"):
        for width_name, viewport in (("", LAPTOP), ("-phone", PHONE)):
            page = new_page(f"{sqlite_server.url}/", viewport=viewport, color_scheme=scheme)
            expect(page.locator(".task-card")).to_have_count(5)
            expect(page.locator(".agent")).to_have_count(2)
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
            shoot(page, f"board-{scheme}{width_name}")
            page.locator(".task-card").filter(
                has_text="Review the project documentation"
            ).get_by_role("link").click()
            expect(page.locator("#detail-title")).to_have_text("Review the project documentation")
            expect(page.locator(".tool-card")).to_have_count(3)
            expect(page.locator("#detail-agent")).to_have_text("Reviewer · Working")
            page.locator("#detail-view").evaluate("() => document.activeElement.blur()")
            shoot(page, f"detail-{scheme}{width_name}")
            assert task_id in page.url
    # the toggle overrides the system preference
    page = new_page(f"{sqlite_server.url}/", color_scheme="light")
    toggle = page.get_by_role("button", name="Theme: system (press to change)")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.get_by_role("button", name="Theme: light (press to change)").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(14, 18, 23)"
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
