"""The WCAG 2.1 AA audit (axe-core, tests/support/axe.py) of the UI's views in real Chromium,
in light and dark: the board (its columns by status, with a card's "Move…" list open, and the
card grid), the task panel and the "Needs you" inbox, each with content that exercises them (a
confidence not known yet, a conversation long enough to scroll, tool calls, a timeline; a
question's schema form, choices, a JSON answer box, an approval, a request's outcome)."""

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.axe import assert_accessible
from tests.support.browser import (
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

SCHEMES = pytest.mark.parametrize("scheme", ["light", "dark"])


@pytest.fixture
def client(sqlite_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        yield http


@pytest.fixture
def busy_task(client: httpx.Client) -> dict[str, Any]:
    """A task at work: progress, a long conversation, a tool call; and two more tasks, one of
    them with its confidence not known."""
    create_task(client, "Nothing known yet", tags=["docs"])
    create_task(client, "Waiting", status="pending", priority="high")
    task = create_task(client, "Agent at work", status="in_progress", tags=["review", "ops"])
    events: list[dict[str, Any]] = [
        {"event_type": "progress_update", "data": {"progress": 0.4, "message": "Reading"}},
        {"event_type": "confidence_update", "data": {"confidence": 0.7}},
        {"event_type": "tool_call.start", "data": {"tool_call_id": "c1", "name": "read_file"}},
        {"event_type": "tool_call.args", "data": {"tool_call_id": "c1", "delta": '{"path": "a"}'}},
        {"event_type": "tool_call.end", "data": {"tool_call_id": "c1"}},
        {"event_type": "tool_call.result", "data": {"tool_call_id": "c1", "content": "text"}},
    ]
    for n in range(12):
        events += [
            {"event_type": "message.start", "data": {"message_id": f"m{n}"}},
            {
                "event_type": "message.delta",
                "data": {"message_id": f"m{n}", "delta": f"Step {n} done. " * 8},
            },
            {"event_type": "message.end", "data": {"message_id": f"m{n}"}},
        ]
    publish(client, task["id"], *events)
    return task


def open_board(new_page: NewPage, server: LiveServer, scheme: str) -> "Page":
    page = new_page(f"{server.url}/", color_scheme=scheme, bypass_csp=True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator(".task-card")).to_have_count(3)
    return page


@SCHEMES
def test_the_board_has_no_wcag_violations(
    sqlite_server: LiveServer, busy_task: dict[str, Any], new_page: NewPage, scheme: str
) -> None:
    """The columns, with a card's list of moves open (some unavailable, with reasons), and
    the card grid; a confidence not known yet (a meter still has a value)."""
    page = open_board(new_page, sqlite_server, scheme)
    busy = page.locator(".task-card").filter(has_text="Agent at work")
    expect(busy.locator(".fact-progress")).to_have_text("40%")
    expect(page.locator('.column[data-column="in_progress"] .task-card')).to_have_count(1)
    busy.get_by_role("button", name="Move…").click()
    expect(busy.locator(".move-choice")).to_have_count(6)
    assert_accessible(page, f"board columns ({scheme})")
    page.get_by_role("button", name="Card grid").click()
    expect(page.locator("#task-list > .task-card")).to_have_count(3)
    assert_accessible(page, f"board card grid ({scheme})")


@SCHEMES
def test_the_task_panel_has_no_wcag_violations(
    sqlite_server: LiveServer, busy_task: dict[str, Any], new_page: NewPage, scheme: str
) -> None:
    """The panel with a conversation that scrolls (reachable by keyboard) and a tool card."""
    page = new_page(
        f"{sqlite_server.url}/#/tasks/{busy_task['id']}", color_scheme=scheme, bypass_csp=True
    )
    expect(page.locator("#detail-title")).to_have_text("Agent at work")
    expect(page.locator("#conversation > li")).to_have_count(12)
    expect(page.locator("#tool-calls > li")).to_have_count(1)
    box = page.locator(".conversation-box")
    assert box.evaluate("(el) => el.scrollHeight > el.clientHeight"), (
        "the conversation should scroll"
    )
    assert_accessible(page, f"task panel ({scheme})")


def _ask(client: httpx.Client, task_id: str, **body: Any) -> dict[str, Any]:
    opened = client.post(f"/api/v1/tasks/{task_id}/requests", json=body)
    assert opened.status_code == 201, opened.text
    request: dict[str, Any] = opened.json()
    return request


@pytest.fixture
def asking_task(client: httpx.Client) -> dict[str, Any]:
    """A task with every kind of open request, and one answered."""
    task = create_task(client, "Asks a lot", status="in_progress")
    schema = {
        "type": "object",
        "properties": {
            "branch": {"type": "string", "description": "Which branch"},
            "replicas": {"type": "integer", "minimum": 1},
            "force": {"type": "boolean", "description": "Skip the checks"},
            "region": {"enum": ["eu", "us"]},
        },
        "required": ["branch"],
    }
    done = _ask(client, task["id"], kind="question", question="Go?", choices=["yes", "no"])
    client.post(f"/api/v1/requests/{done['id']}/answer", json={"answer": "yes"})
    _ask(client, task["id"], kind="question", question="Deploy what?", response_schema=schema)
    _ask(client, task["id"], kind="question", question="Colour?", choices=["red", "blue"])
    _ask(
        client,
        task["id"],
        kind="question",
        question="Numbers?",
        response_schema={"type": "array", "items": {"type": "integer"}},
    )
    action = {"name": "drop_table", "arguments": {"table": "t"}, "reason": "unused", "risk": "high"}
    _ask(client, task["id"], kind="approval", question="Drop it?", action=action, expires_in=3600)
    return task


@SCHEMES
def test_the_inbox_and_the_task_requests_have_no_wcag_violations(
    sqlite_server: LiveServer, asking_task: dict[str, Any], new_page: NewPage, scheme: str
) -> None:
    """The inbox open over the board (a schema form with a refused field, choices, a JSON
    box, an approval), then the task panel's requests (open ones and an answered one)."""
    page = new_page(f"{sqlite_server.url}/", color_scheme=scheme, bypass_csp=True)
    expect(page.locator("#inbox-count")).to_have_text("4")
    page.locator("#inbox-button").click()
    expect(page.locator("#inbox .request-item")).to_have_count(4)
    deploy = page.locator("#inbox .request-item").filter(has_text="Deploy what?")
    deploy.get_by_role("button", name="Send answer").click()
    expect(deploy.locator(".form-error")).to_be_visible()
    assert_accessible(page, f"inbox ({scheme})")
    page.locator("#inbox .request-task-link").first.click()
    expect(page.locator("#detail-title")).to_have_text("Asks a lot")
    expect(page.locator("#task-requests .request-item")).to_have_count(5)
    assert_accessible(page, f"task panel with requests ({scheme})")
