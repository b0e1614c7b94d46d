"""The task detail panel in real Chromium against a real server: live events, checklist,
editing, messages, control buttons, exports, errors."""

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from taskline.settings import Settings
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
def client(sqlite_server: LiveServer) -> Any:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        yield http


def open_task(new_page: NewPage, server: LiveServer, task: dict[str, Any]) -> "Page":
    """Open the task's panel and wait until it is loaded and live."""
    page = new_page(f"{server.url}/#/tasks/{task['id']}")
    expect(page.locator("#detail-title")).to_have_text(task["title"])
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def test_published_events_each_appear_in_the_open_panel(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Progress, confidence, tool calls, streamed text and state patches show within a second."""
    task = create_task(client, "Agent at work", status="in_progress")
    page = open_task(new_page, sqlite_server, task)
    tid = task["id"]

    publish(
        client,
        tid,
        {"event_type": "progress_update", "data": {"progress": 0.42, "message": "Reading files"}},
    )
    expect(page.locator("#detail-progress-value")).to_have_text("42%", timeout=LIVE_MS)
    expect(page.locator("#detail-progress-message")).to_have_text("Reading files", timeout=LIVE_MS)
    expect(page.locator("#detail-progress")).to_have_attribute("aria-valuenow", "42")

    publish(client, tid, {"event_type": "confidence_update", "data": {"confidence": 0.85}})
    expect(page.locator("#detail-confidence-value")).to_have_text("85%", timeout=LIVE_MS)

    publish(
        client,
        tid,
        {
            "event_type": "tool_call.start",
            "data": {
                "tool_call_id": "call_1",
                "name": "search_docs",
                "args": {"query": "retry policy"},
            },
        },
    )
    card = page.locator('.tool-card[data-tool-call-id="call_1"]')
    expect(card).to_have_attribute("data-status", "running", timeout=LIVE_MS)
    expect(card.locator(".tool-name")).to_have_text("search_docs")
    expect(card.locator(".tool-args pre")).to_contain_text("retry policy")
    publish(
        client,
        tid,
        {
            "event_type": "tool_call.end",
            "data": {"tool_call_id": "call_1", "result": {"hits": 3}, "duration_ms": 1200},
        },
    )
    expect(card).to_have_attribute("data-status", "done", timeout=LIVE_MS)
    expect(card.locator(".tool-duration")).to_have_text("1.2 s")
    expect(card.locator(".tool-result")).to_contain_text('"hits": 3')

    publish(
        client,
        tid,
        {"event_type": "tool_call.start", "data": {"tool_call_id": "call_2", "name": "fetch_url"}},
        {
            "event_type": "tool_call.end",
            "data": {"tool_call_id": "call_2", "error": "timed out after 5 s"},
        },
    )
    failed = page.locator('.tool-card[data-tool-call-id="call_2"]')
    expect(failed).to_have_attribute("data-status", "error", timeout=LIVE_MS)
    expect(failed.locator(".tool-result")).to_contain_text("timed out after 5 s")

    publish(
        client,
        tid,
        {"event_type": "message.start", "data": {"message_id": "m1", "role": "assistant"}},
    )
    publish(
        client,
        tid,
        {"event_type": "message.delta", "data": {"message_id": "m1", "delta": "Found three"}},
    )
    said = page.locator('.said[data-message-id="m1"]')
    expect(said.locator(".said-text")).to_have_text("Found three", timeout=LIVE_MS)
    expect(said).to_have_attribute("data-done", "false")
    publish(
        client,
        tid,
        {"event_type": "message.delta", "data": {"message_id": "m1", "delta": " places to fix."}},
    )
    expect(said.locator(".said-text")).to_have_text("Found three places to fix.", timeout=LIVE_MS)
    publish(client, tid, {"event_type": "message.end", "data": {"message_id": "m1"}})
    expect(said).to_have_attribute("data-done", "true", timeout=LIVE_MS)

    publish(
        client,
        tid,
        {"event_type": "state.snapshot", "data": {"snapshot": {"files": ["a.md"], "done": 0}}},
    )
    expect(page.locator("#state-view")).to_contain_text('"a.md"', timeout=LIVE_MS)
    expect(page.locator("#state-version")).to_have_text("(version 1)")
    publish(
        client,
        tid,
        {
            "event_type": "state.patch",
            "data": {
                "patch": [
                    {"op": "add", "path": "/files/-", "value": "b.md"},
                    {"op": "replace", "path": "/done", "value": 1},
                ]
            },
        },
    )
    expect(page.locator("#state-view")).to_contain_text('"b.md"', timeout=LIVE_MS)
    expect(page.locator("#state-version")).to_have_text("(version 2)")
    expect(page.locator("#state-view .json-leaf", has_text="done")).to_contain_text("1")
    assert (
        page.evaluate("__taskline.app.detail.sharedState.document")
        == client.get(f"/api/v1/tasks/{tid}/state").json()["state"]
    )

    # every event is in the timeline once, in order
    last = client.get(f"/api/v1/tasks/{tid}/events").json()["last_seq"]
    expect(page.locator(f'#timeline li[data-seq="{last}"]')).to_be_visible(timeout=LIVE_MS)
    seqs = page.eval_on_selector_all(
        "#timeline li[data-seq]", "rows => rows.map(r => +r.dataset.seq)"
    )
    assert seqs == list(range(1, last + 1))


def test_a_state_version_jump_refetches_instead_of_patching(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """A patch whose version does not follow the one shown makes the page fetch the state."""
    task = create_task(client, "State keeper")
    publish(client, task["id"], {"event_type": "state.snapshot", "data": {"snapshot": {"n": 1}}})
    page = open_task(new_page, sqlite_server, task)
    expect(page.locator("#state-version")).to_have_text("(version 1)")
    publish(
        client,
        task["id"],
        {
            "event_type": "state.patch",
            "data": {"patch": [{"op": "replace", "path": "/n", "value": 2}]},
        },
    )
    expect(page.locator("#state-version")).to_have_text("(version 2)", timeout=LIVE_MS)
    # a bogus jump (as if events were lost): the page must not patch, but refetch version 2
    page.evaluate(
        """() => __taskline.app.detail.sharedState.apply({event_type: 'state.patch',
            data: {version: 7, patch: [{op: 'replace', path: '/n', value: 999}]}})"""
    )
    page.wait_for_function("() => __taskline.app.detail.sharedState.refetches >= 1")
    expect(page.locator("#state-view")).not_to_contain_text("999")
    assert page.evaluate("__taskline.app.detail.sharedState.document") == {"n": 2}


def test_a_ticked_subtask_shows_on_every_viewer_and_survives_a_reload(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Toggle a subtask in one page; the other shows it checked; after a reload it still is."""
    task = create_task(
        client,
        "Two viewers",
        sections=[
            {"title": "Plan", "subtasks": [{"title": "Read the spec"}, {"title": "Write it"}]}
        ],
    )
    first = open_task(new_page, sqlite_server, task)
    second = open_task(new_page, sqlite_server, task)
    expect(second.get_by_role("checkbox", name="Read the spec")).not_to_be_checked()

    first.get_by_role("checkbox", name="Read the spec").check()
    expect(second.get_by_role("checkbox", name="Read the spec")).to_be_checked(timeout=LIVE_MS)
    expect(second.locator("#checklist-count")).to_have_text("(1 of 2 done)")
    expect(first.get_by_role("checkbox", name="Write it")).not_to_be_checked()

    second.reload()
    expect(second.get_by_role("checkbox", name="Read the spec")).to_be_checked()
    stored = client.get(f"/api/v1/tasks/{task['id']}").json()["sections"][0]["subtasks"][0]
    assert stored["done"] is True

    # and back, from the other page, with the keyboard
    box = second.get_by_role("checkbox", name="Read the spec")
    box.focus()
    second.keyboard.press("Space")
    expect(first.get_by_role("checkbox", name="Read the spec")).not_to_be_checked(timeout=LIVE_MS)


def test_title_and_description_are_edited_and_seen_live(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Edit saves with PATCH; another viewer sees the new title live."""
    task = create_task(client, "Old title", description="Old words")
    editor = open_task(new_page, sqlite_server, task)
    viewer = open_task(new_page, sqlite_server, task)
    editor.get_by_role("button", name="Edit").click()
    editor.locator("#edit-title").fill("New title")
    editor.locator("#edit-description").fill("Better words")
    editor.get_by_role("button", name="Save").click()
    expect(editor.locator("#detail-title")).to_have_text("New title")
    expect(editor.locator("#edit-form")).to_be_hidden()
    expect(viewer.locator("#detail-title")).to_have_text("New title", timeout=LIVE_MS)
    expect(viewer.locator("#detail-description")).to_have_text("Better words")
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["description"] == "Better words"


def test_an_edit_of_a_task_changed_meanwhile_shows_the_conflict_and_overwrites_nothing(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """The form saves with If-Match (the version it was opened on): a change made meanwhile
    is a 412, shown in the form, and nothing is overwritten; Reload takes the other change
    into the fields the person did not touch, and saving then keeps both."""
    task = create_task(client, "Shared title", description="Old words")
    page = open_task(new_page, sqlite_server, task)
    page.get_by_role("button", name="Edit").click()
    page.locator("#edit-title").fill("Person's title")

    # someone else (an agent, another tab) changes the description meanwhile
    other = client.patch(f"/api/v1/tasks/{task['id']}", json={"description": "Agent's words"})
    assert other.status_code == 200
    expect(page.locator("#detail-description")).to_have_text("Agent's words", timeout=LIVE_MS)

    page.get_by_role("button", name="Save").click()
    conflict = page.locator("#edit-conflict")
    expect(conflict).to_be_visible()
    expect(conflict).to_have_attribute("role", "alert")
    expect(conflict).to_contain_text("changed by someone else since you opened it")
    expect(conflict).to_contain_text("reload")
    expect(page.locator("#edit-form")).to_be_visible()
    expect(page.locator("#edit-title")).to_have_value("Person's title")
    stored = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert stored["title"] == "Shared title" and stored["description"] == "Agent's words"

    page.get_by_role("button", name="Reload").click()
    expect(conflict).to_be_hidden()
    expect(page.locator("#edit-title")).to_have_value("Person's title")
    expect(page.locator("#edit-description")).to_have_value("Agent's words")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#edit-form")).to_be_hidden()
    expect(page.locator("#detail-title")).to_have_text("Person's title")
    stored = client.get(f"/api/v1/tasks/{task['id']}").json()
    assert stored["title"] == "Person's title" and stored["description"] == "Agent's words"


def test_with_if_match_required_the_panel_still_edits_ticks_and_starts(
    sqlite_url: str, new_page: NewPage
) -> None:
    """TASKLINE_REQUIRE_IF_MATCH: the edit form sends the version it showed; the checklist
    and the Start button (a flip and a status move, not copies written back) send ``*``."""
    server = LiveServer(Settings(database_url=sqlite_url, require_if_match=True))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            task = create_task(
                http, "Strict", sections=[{"title": "S", "subtasks": [{"title": "Tick me"}]}]
            )
            assert http.patch(f"/api/v1/tasks/{task['id']}", json={}).status_code == 428
            page = open_task(new_page, server, task)
            page.get_by_role("checkbox", name="Tick me").check()
            page.get_by_role("button", name="Start").click()
            expect(page.locator("#detail-status")).to_have_text("In progress")
            page.get_by_role("button", name="Edit").click()
            page.locator("#edit-title").fill("Strict, edited")
            page.get_by_role("button", name="Save").click()
            expect(page.locator("#edit-form")).to_be_hidden()
            stored = http.get(f"/api/v1/tasks/{task['id']}").json()
            assert stored["title"] == "Strict, edited" and stored["status"] == "in_progress"
            assert stored["sections"][0]["subtasks"][0]["done"] is True
            expect(page.get_by_role("alert")).to_have_count(0)
    finally:
        server.stop()


def test_messages_and_pause_resume_cancel(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """The message box posts to the thread; the control buttons move the status."""
    task = create_task(client, "Steer me", status="in_progress")
    page = open_task(new_page, sqlite_server, task)
    page.get_by_label("Message to the agent").fill("Please skip the appendix.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#message-status")).to_have_text(
        "Saved; the agent gets it when it connects."
    )
    expect(page.locator(".said-human .said-text")).to_have_text(
        "Please skip the appendix.", timeout=LIVE_MS
    )
    thread = client.get(f"/api/v1/tasks/{task['id']}/messages").json()
    assert [m["content"] for m in thread] == ["Please skip the appendix."]

    status = page.locator("#detail-status")
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()
    page.get_by_role("button", name="Pause").click()
    expect(status).to_have_text("Paused")
    expect(page.get_by_role("button", name="Pause")).to_be_disabled()
    page.get_by_role("button", name="Resume").click()
    expect(status).to_have_text("In progress")
    page.get_by_role("button", name="Cancel task").click()
    expect(status).to_have_text("Cancelled")
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "cancelled"
    for kind in ("task_paused", "task_resumed", "task_cancelled"):
        expect(page.locator(f'#timeline li[data-type="{kind}"]')).to_have_count(1)


def test_api_errors_are_shown_with_their_detail(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """A refused request shows the problem's detail; a deleted task says so."""
    task = create_task(client, "Soon gone")
    page = open_task(new_page, sqlite_server, task)
    client.delete(f"/api/v1/tasks/{task['id']}")
    expect(page.locator("#detail-gone")).to_have_text("This task was deleted.", timeout=LIVE_MS)
    page.get_by_label("Message to the agent").fill("Anyone there?")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert").filter(has_text="Could not send the message")
    expect(alert).to_contain_text(f"task '{task['id']}' does not exist")
    alert.get_by_role("button", name="Dismiss this message").click()
    expect(alert).to_have_count(0)


def test_timeline_filters_and_loads_earlier_events(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """The timeline is capped; "Load earlier" fetches older events; filters narrow it."""
    task = create_task(client, "Long log")
    events = [{"event_type": "custom", "data": {"name": "tick", "value": n}} for n in range(700)]
    publish(client, task["id"], *events[:400])
    publish(client, task["id"], *events[400:])
    publish(
        client,
        task["id"],
        {"event_type": "tool_call.start", "data": {"tool_call_id": "c", "name": "grep"}},
    )
    page = open_task(new_page, sqlite_server, task)
    rows = page.locator("#timeline li[data-seq]")
    expect(rows).to_have_count(300)
    expect(page.locator('#timeline li[data-seq="702"]')).to_be_visible()
    page.get_by_role("button", name="Load earlier").click()  # 200 more: seq 3 to 202
    expect(rows).to_have_count(700)
    expect(page.locator('#timeline li[data-seq="3"]')).to_have_count(1)
    expect(page.locator('#timeline li[data-seq="2"]')).to_have_count(0)
    page.get_by_role("button", name="Load earlier").click()  # the first two
    expect(rows).to_have_count(702)
    expect(page.locator('#timeline li[data-seq="1"]')).to_have_count(1)
    expect(page.get_by_role("button", name="Load earlier")).to_be_hidden()

    page.get_by_label("Show", exact=True).select_option("tools")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-type", "tool_call.start")
    page.get_by_label("Show", exact=True).select_option("all")
    page.get_by_label("Contains", exact=True).fill("tick: 699")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-seq", "701")


def test_export_buttons_download_the_files(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage, tmp_path: Path
) -> None:
    """JSON, CSV, Markdown and ZIP links download this task's export."""
    task = create_task(
        client, "Export me", sections=[{"title": "S", "subtasks": [{"title": "one", "done": True}]}]
    )
    page = open_task(new_page, sqlite_server, task)
    files: dict[str, bytes] = {}
    for label, ext in (("JSON", "json"), ("CSV", "csv"), ("Markdown", "md"), ("ZIP", "zip")):
        with page.expect_download() as info:
            page.locator("#exports").get_by_role("link", name=label).click()
        download = info.value
        assert re.fullmatch(rf"taskline-.+\.{ext}", download.suggested_filename), (
            download.suggested_filename
        )
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        files[ext] = target.read_bytes()
    assert json.loads(files["json"])["tasks"][0]["id"] == task["id"]
    assert b"Export me" in files["csv"]
    assert b"- [x] one" in files["md"]
    with zipfile.ZipFile(io.BytesIO(files["zip"])) as archive:
        assert "manifest.json" in archive.namelist()


def test_an_imported_task_is_live_at_once(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage, tmp_path: Path
) -> None:
    """An imported task has no events yet; its (empty) log can be followed at once, so the
    panel is live immediately and shows the first change."""
    source = LiveServer(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"))
    source.start()
    try:
        with httpx.Client(base_url=source.url, timeout=10) as other:
            task = create_task(other, "Imported")
            exported = other.get(f"/api/v1/tasks/{task['id']}/export/json").content
    finally:
        source.stop()
    imported = client.post(
        "/api/v1/tasks/import", content=exported, headers={"Content-Type": "application/json"}
    )
    assert imported.status_code == 200, imported.text

    page = new_page(f"{sqlite_server.url}/#/tasks/{task['id']}")
    expect(page.locator("#detail-title")).to_have_text("Imported")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#detail-gone")).to_be_hidden()
    client.patch(f"/api/v1/tasks/{task['id']}", json={"title": "Imported and changed"})
    expect(page.locator("#detail-title")).to_have_text("Imported and changed", timeout=15_000)
    expect(page.locator("#detail-banner")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def test_the_timeline_follows_the_newest_event_unless_scrolled_up(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """At the bottom the timeline keeps the newest row in view; scrolled up, it stays put."""
    task = create_task(client, "Busy log")
    page = open_task(new_page, sqlite_server, task)
    scroller = page.locator("#timeline-scroll")
    distance_from_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    for batch in range(3):
        events = [{"event_type": "custom", "data": {"name": "tick", "value": n}} for n in range(40)]
        seqs = publish(client, task["id"], *events)
        expect(page.locator(f'#timeline li[data-seq="{seqs[-1]}"]')).to_be_attached()
        page.wait_for_function(
            f"() => {{ const el = document.querySelector('#timeline-scroll');"
            f" return ({distance_from_bottom})(el) < 4; }}"
        )
        assert batch < 1 or scroller.evaluate("el => el.scrollTop") > 0
    scroller.evaluate("el => { el.scrollTop = 0; }")
    seqs = publish(client, task["id"], {"event_type": "custom", "data": {"name": "late"}})
    expect(page.locator(f'#timeline li[data-seq="{seqs[-1]}"]')).to_be_attached()
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))")
    assert scroller.evaluate("el => el.scrollTop") == 0
