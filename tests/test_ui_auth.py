"""Signing in, in real Chromium against a server that checks who asks: the sign-in view, the
person in the header, signing out (the session is revoked), what a viewer may not do (disabled
with the reason; the server's 403 shown), streams refused with 4401, and the actor of each
event in the timeline. The rest of the UI tests run with authentication off (conftest.py)."""

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.auth import SecureServer, make_user, secure_server
from tests.support.browser import (
    LIVE_MS,
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

ANA_PASSWORD = "correct horse battery"
VIC_PASSWORD = "viewer's own password"


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    """A server with auth on: member ana (password), viewer vic (password), tokens per role."""
    make_user(sqlite_url, "vic", "viewer", password=VIC_PASSWORD)
    with secure_server(sqlite_url) as server:
        yield server


@pytest.fixture
def member(secured: SecureServer) -> Iterator[httpx.Client]:
    """ana's API token."""
    with secured.client("member") as http:
        yield http


def sign_in(page: "Page", name: str, password: str) -> None:
    """Fill the sign-in form and send it."""
    expect(page.locator("#sign-in-view")).to_be_visible()
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_signed_in(new_page: NewPage, url: str, name: str, password: str) -> "Page":
    """Open ``url``, sign in, and wait until the page is live."""
    page = new_page(url)
    sign_in(page, name, password)
    expect(page.locator("#sign-in-view")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def fetch_status(page: "Page", path: str) -> int:
    """The status the page's own fetch of ``path`` gets (with whatever cookie it has)."""
    status: int = page.evaluate("async (path) => (await fetch(path)).status", path)
    return status


def test_a_wrong_password_shows_the_reason_and_the_right_one_opens_the_board(
    secured: SecureServer, member: httpx.Client, new_page: NewPage
) -> None:
    """Nobody signed in: the sign-in view, not the board. A wrong password shows the server's
    401 detail; the right one shows the board, live, with ana and her role in the header."""
    create_task(member, "Ana's first task")
    page = new_page(f"{secured.url}/")
    expect(page.locator("#sign-in-view")).to_be_visible()
    expect(page.get_by_label("User name")).to_be_focused()
    expect(page.locator("#board-view")).to_be_hidden()
    expect(page.locator("#account")).to_be_hidden()
    assert page.title() == "Sign in — Taskline"

    sign_in(page, "ana", "not her password")
    error = page.get_by_role("alert").filter(has_text="wrong user name or password")
    expect(error).to_be_visible()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#board-view")).to_be_hidden()

    page.get_by_label("Password").fill(ANA_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#board-view")).to_be_visible()
    expect(page.locator("#sign-in-view")).to_be_hidden()
    expect(page.locator(".task-card").filter(has_text="Ana's first task")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#account-name")).to_have_text("ana")
    expect(page.locator("#account-role")).to_have_text("member")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # a member may create tasks: the form is enabled and says nothing about it
    expect(page.get_by_role("button", name="Create task")).to_be_enabled()
    expect(page.locator("#create-note")).to_be_hidden()
    # the session cookie is HttpOnly: the page's scripts cannot read it
    assert "taskline_session" not in page.evaluate("document.cookie")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["taskline_session"]["httpOnly"] is True
    assert cookies["taskline_session"]["sameSite"] == "Lax"


def test_signing_out_returns_to_the_sign_in_view_and_the_cookie_no_longer_works(
    secured: SecureServer, member: httpx.Client, new_page: NewPage
) -> None:
    """Sign out: the sign-in view again, the board's tasks gone from the page, the streams
    stopped; the page's requests are 401, and so is the old cookie itself (revoked)."""
    create_task(member, "Private plans")
    page = open_signed_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    expect(page.locator(".task-card")).to_have_count(1)
    assert fetch_status(page, "/api/v1/tasks/") == 200
    [cookie] = [c for c in page.context.cookies() if c["name"] == "taskline_session"]

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in-view")).to_be_visible()
    expect(page.locator("#sign-in-note")).to_have_text("Signed out.")
    expect(page.locator("#account")).to_be_hidden()
    expect(page.locator("#board-view")).to_be_hidden()
    expect(page.locator(".task-card")).to_have_count(0)
    expect(page.locator("#connection")).to_have_attribute("data-state", "closed")
    assert fetch_status(page, "/api/v1/tasks/") == 401
    with httpx.Client(base_url=secured.url, timeout=10) as stolen:
        stolen.cookies.set("taskline_session", cookie["value"])
        assert stolen.get("/api/v1/tasks/").status_code == 401
        assert stolen.get("/api/v1/auth/me").status_code == 401

    # signing in again works, and the board is back
    sign_in(page, "ana", ANA_PASSWORD)
    expect(page.locator(".task-card").filter(has_text="Private plans")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def test_a_viewer_sees_what_they_may_not_do_and_the_servers_403_is_shown(
    secured: SecureServer, member: httpx.Client, new_page: NewPage
) -> None:
    """vic (viewer), signed in on a page ana signed out of: the create form, Edit, the
    controls, the message box and the checklist are disabled, each saying why; a forbidden
    request still made shows the server's 403 detail, and changes nothing."""
    task = create_task(
        member,
        "Watched task",
        status="in_progress",
        sections=[{"title": "Steps", "subtasks": [{"title": "Read the spec"}]}],
    )
    page = open_signed_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "vic", VIC_PASSWORD)  # same page: its streams get a client id of vic's own
    expect(page.locator("#account-name")).to_have_text("vic")
    expect(page.locator("#account-role")).to_have_text("viewer")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator(".task-card").filter(has_text="Watched task")).to_be_visible()

    create = page.get_by_role("button", name="Create task")
    expect(create).to_be_disabled()
    expect(create).to_have_attribute("title", "Viewers cannot create tasks")
    expect(page.locator("#new-title")).to_be_disabled()
    expect(page.locator("#create-note")).to_have_text("Viewers cannot create tasks.")
    expect(create).to_have_accessible_description("Viewers cannot create tasks.")

    page.locator(".task-card").filter(has_text="Watched task").get_by_role("link").click()
    expect(page.locator("#detail-title")).to_have_text("Watched task")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    pause = page.get_by_role("button", name="Pause")
    expect(pause).to_be_disabled()
    expect(pause).to_have_attribute("title", "Viewers cannot pause tasks")
    expect(page.get_by_role("button", name="Cancel task")).to_have_attribute(
        "title", "Viewers cannot cancel tasks"
    )
    expect(page.get_by_role("button", name="Edit")).to_be_disabled()
    expect(page.get_by_role("button", name="Edit")).to_have_attribute(
        "title", "Viewers cannot edit tasks"
    )
    expect(page.locator("#controls-note")).to_have_text(
        "Viewers cannot edit, start, pause, resume or cancel tasks."
    )
    expect(page.get_by_label("Message to the agent")).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.locator("#message-note")).to_have_text("Viewers cannot post messages.")
    box = page.get_by_role("checkbox", name="Read the spec")
    expect(box).to_be_disabled()
    expect(box).to_have_attribute("title", "Viewers cannot tick subtasks")
    expect(page.locator("#checklist-note")).to_have_text("Viewers cannot tick subtasks.")
    # exports are reading: still there
    expect(page.locator("#exports").get_by_role("link", name="JSON")).to_be_visible()

    # the API called from the page: the 403's detail is the error's message
    refused = page.evaluate(
        """async (id) => {
            const { api } = await import('/ui/js/api.js');
            try { await api(`/api/v1/tasks/${id}/pause`, { method: 'POST' }); return null; }
            catch (e) { return { status: e.status, message: e.message }; }
        }""",
        task["id"],
    )
    assert refused == {
        "status": 403,
        "message": "the viewer role may not pause, resume or cancel tasks",
    }
    # a disabled button forced on (as a stale page might have it): the server refuses, and
    # the page says so in words instead of swallowing it
    page.evaluate("document.querySelector('#controls [data-action=\"pause\"]').disabled = false")
    pause.click()
    alert = page.get_by_role("alert").filter(has_text="Could not pause the task")
    expect(alert).to_contain_text("the viewer role may not pause, resume or cancel tasks")
    expect(pause).to_be_disabled()  # put back as the role allows
    expect(page.locator("#detail-status")).to_have_text("In progress")
    assert member.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "in_progress"
    expect(page.locator("#sign-in-view")).to_be_hidden()  # a 403 is not a lost session


def test_a_stream_refused_with_4401_asks_to_sign_in_again_and_does_not_retry(
    secured: SecureServer, new_page: NewPage
) -> None:
    """The session is revoked while the page is open: the next stream connection is closed
    with 4401, and the page shows the sign-in view (with the reason) instead of reconnecting
    forever; signing in again makes the board live again."""
    page = open_signed_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "taskline_session"]
    with httpx.Client(base_url=secured.url, timeout=10) as other:
        other.cookies.set("taskline_session", cookie["value"])
        revoked = other.delete("/api/v1/auth/session", headers={"Origin": secured.url})
        assert revoked.status_code == 204
    # drop the board's connection: it reconnects with the revoked cookie
    page.evaluate("window.__taskline.app.board.socket.ws.close()")
    expect(page.locator("#sign-in-view")).to_be_visible(timeout=LIVE_MS)
    expect(page.locator("#sign-in-note")).to_contain_text("your session has ended")
    expect(page.locator("#board-view")).to_be_hidden()
    expect(page.locator("#account")).to_be_hidden()
    page.wait_for_timeout(1500)  # more than the first backoff delays
    states = page.evaluate(
        "() => ({ board: window.__taskline.app.board.socket.state,"
        " ws: window.__taskline.app.board.socket.ws,"
        " history: window.__taskline.app.status.history })"
    )
    assert states["board"] == "closed" and states["ws"] is None
    assert states["history"][-2:] == ["denied", "closed"], states  # and no retry since

    sign_in(page, "ana", ANA_PASSWORD)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#account-name")).to_have_text("ana")


def test_an_api_401_shows_the_sign_in_view(secured: SecureServer, new_page: NewPage) -> None:
    """The session ends and the next request (a filter change refetches the board) is a 401:
    the sign-in view, not an error notice."""
    page = open_signed_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "taskline_session"]
    with httpx.Client(base_url=secured.url, timeout=10) as other:
        other.cookies.set("taskline_session", cookie["value"])
        other.delete("/api/v1/auth/session", headers={"Origin": secured.url})
    page.locator("#filter-status").select_option("paused")
    expect(page.locator("#sign-in-view")).to_be_visible()
    expect(page.locator("#sign-in-note")).to_contain_text("sign in again")
    expect(page.locator(".notice-error")).to_have_count(0)


def test_a_live_socket_refused_by_the_server_stops_and_says_why(
    secured: SecureServer, new_page: NewPage
) -> None:
    """LiveSocket alone, not signed in: /ws/board closes with 4401 and the reason; the socket
    reports it once and opens no second connection."""
    page = new_page(f"{secured.url}/ui/")
    outcome = page.evaluate(
        """async () => {
            const { LiveSocket } = await import('/ui/js/live-socket.js');
            const opened = [];
            const Real = window.WebSocket;
            window.WebSocket = class extends Real {
                constructor(url) { super(url); opened.push(url); }
            };
            const denied = [];
            const socket = new LiveSocket({
                path: '/ws/board', onEvents: () => {},
                onDenied: (code, reason) => denied.push([code, reason]),
            });
            socket.start();
            await new Promise((resolve) => setTimeout(resolve, 2500));
            window.WebSocket = Real;
            return { denied, opened: opened.length, state: socket.state };
        }"""
    )
    assert outcome["opened"] == 1
    assert outcome["state"] == "denied"
    [[code, reason]] = outcome["denied"]
    assert code == 4401 and "sign in" in reason


def test_the_timeline_names_who_made_each_event(secured: SecureServer, new_page: NewPage) -> None:
    """ana pauses the task from the page; agent_bot publishes with its token: each row of
    the timeline names its actor."""
    with secured.client("admin") as admin, secured.client("agent") as agent:
        assert admin.post("/api/v1/agents/", json={"id": "agent_bot", "name": "Bot"}).is_success
        task = create_task(
            admin, "Shared work", status="in_progress", assigned_agent_id="agent_bot"
        )
        page = open_signed_in(new_page, f"{secured.url}/#/tasks/{task['id']}", "ana", ANA_PASSWORD)
        expect(page.locator("#detail-title")).to_have_text("Shared work")
        page.get_by_role("button", name="Pause").click()
        paused = page.locator('#timeline li[data-type="task_paused"]')
        expect(paused.locator(".tl-actor")).to_have_text("person:ana", timeout=LIVE_MS)
        published = agent.post(
            f"/api/v1/tasks/{task['id']}/events",
            json={"event_type": "progress_update", "data": {"progress": 0.5}},
        )
        assert published.status_code == 200, published.text
        progress = page.locator('#timeline li[data-type="progress_update"]')
        expect(progress.locator(".tl-actor")).to_have_text("agent:agent_bot", timeout=LIVE_MS)
        created = page.locator('#timeline li[data-type="task_created"] .tl-actor')
        expect(created).to_have_text(_actor_of_first_event(admin, task["id"]))
        # the text filter finds rows by actor too
        page.get_by_label("Contains").fill("agent:agent_bot")
        expect(page.locator("#timeline li[data-seq]")).to_have_count(1)


def _actor_of_first_event(client: httpx.Client, task_id: str) -> str:
    events: list[dict[str, Any]] = client.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    actor: str = events[0]["actor"]
    assert actor.startswith("token:")
    return actor


def test_with_auth_off_there_is_nobody_to_sign_out(
    sqlite_server: LiveServer, new_page: NewPage
) -> None:
    """A server that does not check who asks: no sign-in view, no account in the header, and
    every control enabled (the anonymous principal is an admin)."""
    page = new_page(f"{sqlite_server.url}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#board-view")).to_be_visible()
    expect(page.locator("#sign-in-view")).to_be_hidden()
    expect(page.locator("#account")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(page.get_by_role("button", name="Create task")).to_be_enabled()
    expect(page.locator("#create-note")).to_be_hidden()
