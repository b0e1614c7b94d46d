"""The board's columns by status in real Chromium against a real server: cards in their
columns and moved live by changes from another client, a move by drag and drop, the keyboard
way ("Move…"), moves the state machine forbids marked with the reason, a move the server
refuses explained with its message, and the card grid a remembered toggle away."""

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from taskline.domain.status import TRANSITIONS
from tests.support.auth import make_user, secure_server
from tests.support.browser import (
    LIVE_MS,
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.rest import create_task
from tests.support.server import LiveServer
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

expect = playwright_api().expect
NewPage = Callable[..., "Page"]


@pytest.fixture
def client(sqlite_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.url, timeout=10) as http:
        yield http


def open_board(new_page: NewPage, server: LiveServer, cards: int) -> "Page":
    page = new_page(f"{server.url}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#task-columns .task-card")).to_have_count(cards)
    return page


def column(page: "Page", name: str) -> "Locator":
    return page.locator(f'.column[data-column="{name}"]')


def card_in(page: "Page", name: str, title: str) -> "Locator":
    return column(page, name).locator(".task-card").filter(has_text=title)


def status_of(client: httpx.Client, task_id: str) -> str:
    status: str = client.get(f"/api/v1/tasks/{task_id}").json()["status"]
    return status


def test_the_ui_knows_the_state_machine_and_where_a_task_waiting_for_input_goes(
    sqlite_server: LiveServer, new_page: NewPage
) -> None:
    """status-moves.js's TRANSITIONS is domain.status.TRANSITIONS; a task with
    ``needs_input`` sits in "needs input" unless finished (missing means false)."""
    page = new_page(f"{sqlite_server.url}/ui/")
    found = page.evaluate(
        """async () => {
            const m = await import('/ui/js/status-moves.js');
            return {
                transitions: m.TRANSITIONS,
                columns: [
                    m.columnOf({ status: 'in_progress', needs_input: true }),
                    m.columnOf({ status: 'paused', needs_input: true }),
                    m.columnOf({ status: 'in_progress' }),
                    m.columnOf({ status: 'failed', needs_input: true }),
                    m.columnOf({ status: 'cancelled' }),
                    m.columnOf({ status: 'pending', needs_input: false }),
                ],
            };
        }"""
    )
    assert found["transitions"] == {
        status.value: [s.value for s in allowed] for status, allowed in TRANSITIONS.items()
    }
    assert found["columns"] == [
        "needs_input",
        "needs_input",
        "in_progress",
        "done",
        "done",
        "pending",
    ]


def test_cards_sit_in_their_columns_and_follow_changes_from_another_client(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Each status in its column (finished ones together, with counts); a pause, a
    completion and a new task made over REST move or add cards live."""
    create_task(client, "Todo")
    running = create_task(client, "Running", status="in_progress")
    create_task(client, "Shipped", status="completed")
    page = open_board(new_page, sqlite_server, 3)
    expect(card_in(page, "pending", "Todo")).to_be_visible()
    expect(card_in(page, "in_progress", "Running")).to_be_visible()
    expect(card_in(page, "done", "Shipped")).to_be_visible()
    expect(column(page, "done").locator(".column-count")).to_have_text("(1)")
    expect(column(page, "needs_input").locator(".task-card")).to_have_count(0)

    client.post(f"/api/v1/tasks/{running['id']}/pause")
    expect(card_in(page, "paused", "Running")).to_be_visible(timeout=LIVE_MS)
    expect(column(page, "in_progress").locator(".task-card")).to_have_count(0)
    client.post(f"/api/v1/tasks/{running['id']}/resume")
    client.patch(f"/api/v1/tasks/{running['id']}", json={"status": "failed"})
    expect(card_in(page, "done", "Running")).to_be_visible(timeout=LIVE_MS)
    expect(column(page, "done").locator(".column-count")).to_have_text("(2)")
    create_task(client, "Fresh")
    expect(card_in(page, "pending", "Fresh")).to_be_visible(timeout=LIVE_MS)


def test_dragging_a_card_onto_a_column_moves_the_task(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Drag "in progress" → "paused": the task is paused (POST .../pause) and another
    page sees it move; over a column it may not go to, the reason shows and nothing moves."""
    todo = create_task(client, "Waiting its turn")
    running = create_task(client, "Busy", status="in_progress")
    page = open_board(new_page, sqlite_server, 2)
    other = open_board(new_page, sqlite_server, 2)

    card_in(page, "in_progress", "Busy").drag_to(column(page, "paused"))
    expect(card_in(page, "paused", "Busy")).to_be_visible()
    wait_until(lambda: status_of(client, running["id"]) == "paused", message="the task paused")
    expect(card_in(other, "paused", "Busy")).to_be_visible(timeout=LIVE_MS)
    expect(page.locator("#move-status")).to_have_text("“Busy” is paused now.")

    # a pending task cannot be paused: the column says why while the card is over it
    source = card_in(page, "pending", "Waiting its turn")
    source.hover()
    page.mouse.down()
    target = column(page, "paused")
    box = target.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    expect(target.locator(".drop-hint")).to_have_text(
        "Cannot move here: from pending it can only become in progress or cancelled."
    )
    expect(column(page, "in_progress").locator(".drop-hint")).to_have_text(
        "Drop to make it in progress."
    )
    page.mouse.up()
    expect(page.locator("#move-status")).to_have_text(
        "“Waiting its turn” was not moved: from pending it can only become in progress or"
        " cancelled."
    )
    expect(card_in(page, "pending", "Waiting its turn")).to_be_visible()
    assert status_of(client, todo["id"]) == "pending"


def test_the_done_column_offers_completed_failed_and_cancelled_while_dragging(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Its three drop zones show while a card is dragged; dropping on "Failed" fails the
    task."""
    running = create_task(client, "Doomed", status="in_progress")
    page = open_board(new_page, sqlite_server, 1)
    zones = column(page, "done").locator(".drop-zone")
    expect(zones.first).to_be_hidden()
    card_in(page, "in_progress", "Doomed").hover()
    page.mouse.down()
    page.mouse.move(10, 10, steps=3)  # the drag starts
    expect(zones).to_have_text(["Completed", "Failed", "Cancelled"])
    failed = column(page, "done").locator('.drop-zone[data-drop-status="failed"]')
    expect(failed).to_have_attribute("data-drop", "allowed")
    box = failed.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(card_in(page, "done", "Doomed")).to_be_visible()
    wait_until(lambda: status_of(client, running["id"]) == "failed", message="the task failed")
    expect(zones.first).to_be_hidden()


def test_the_keyboard_moves_a_task_and_says_which_moves_it_cannot_make(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """Tab to "Move…", Enter: the statuses are listed, the forbidden ones marked unavailable
    with the reason; Enter on "Completed" completes the task, the focus stays on the card;
    Escape closes the list."""
    running = create_task(client, "Keyboard task", status="in_progress")
    page = open_board(new_page, sqlite_server, 1)
    card = card_in(page, "in_progress", "Keyboard task")
    toggle = card.get_by_role("button", name="Move…")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    choices = card.locator(".move-choice")
    expect(choices).to_have_text(
        ["Pending", "In progress", "Paused", "Completed", "Failed", "Cancelled"]
    )
    pending = card.get_by_role("button", name="Pending")
    expect(pending).to_have_attribute("aria-disabled", "true")
    expect(pending).to_have_accessible_description(
        "from in progress it can only become paused, completed, failed or cancelled"
    )
    expect(card.get_by_role("button", name="In progress")).to_have_accessible_description(
        "it is in progress already"
    )
    expect(card.get_by_role("button", name="Paused")).to_be_focused()
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()

    page.keyboard.press("Enter")
    pending.press("Enter")  # unavailable: says why, moves nothing
    expect(page.locator("#move-status")).to_have_text(
        "“Keyboard task” cannot become pending: from in progress it can only become paused,"
        " completed, failed or cancelled."
    )
    card.get_by_role("button", name="Completed").press("Enter")
    done = card_in(page, "done", "Keyboard task")
    expect(done).to_be_visible()
    expect(done.get_by_role("button", name="Move…")).to_be_focused()
    wait_until(lambda: status_of(client, running["id"]) == "completed", message="completed")


def test_an_open_list_of_moves_follows_the_task_live(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """The list is open when another client pauses the task: the card moves to "paused" and
    the list now offers "In progress" and refuses "Paused"."""
    running = create_task(client, "Moving target", status="in_progress")
    page = open_board(new_page, sqlite_server, 1)
    card_in(page, "in_progress", "Moving target").get_by_role("button", name="Move…").click()
    client.post(f"/api/v1/tasks/{running['id']}/pause")
    card = card_in(page, "paused", "Moving target")
    expect(card).to_be_visible(timeout=LIVE_MS)
    expect(card.get_by_role("button", name="Paused")).to_have_accessible_description(
        "it is paused already"
    )
    expect(card.get_by_role("button", name="In progress")).not_to_have_attribute(
        "aria-disabled", "true"
    )


def test_a_move_the_server_refuses_shows_its_message_and_the_card_goes_back(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """The page has not heard (its live stream stopped) that another client completed the
    task; pausing it is refused by the server: its message is shown, and the card goes to
    where the server has it."""
    running = create_task(client, "Stale view", status="in_progress")
    page = open_board(new_page, sqlite_server, 1)
    page.evaluate("() => window.__taskline.app.board.socket.stop()")
    client.patch(f"/api/v1/tasks/{running['id']}", json={"status": "completed"})
    card = card_in(page, "in_progress", "Stale view")
    card.get_by_role("button", name="Move…").click()
    card.get_by_role("button", name="Paused").click()
    message = "cannot go from 'completed' to 'paused'"
    expect(page.locator("#move-status")).to_contain_text(message)
    expect(page.locator("#notices")).to_contain_text("Could not move “Stale view” to paused")
    expect(page.locator("#notices")).to_contain_text(message)
    expect(card_in(page, "done", "Stale view")).to_be_visible()
    assert status_of(client, running["id"]) == "completed"


def test_a_viewer_sees_every_move_unavailable_with_the_roles_reason(
    sqlite_url: str, new_page: NewPage
) -> None:
    """Signed in as a viewer, each move says what the role may not do (pausing is a control,
    completing a change of the task); nothing is sent."""
    make_user(sqlite_url, "vic", "viewer", password="viewer's own password")
    with secure_server(sqlite_url) as server, server.client("member") as member:
        task = create_task(member, "Look, don't touch", status="in_progress")
        page = new_page(f"{server.url}/")
        page.get_by_label("User name").fill("vic")
        page.get_by_label("Password").fill("viewer's own password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        card = card_in(page, "in_progress", "Look, don't touch")
        card.get_by_role("button", name="Move…").click()
        paused = card.get_by_role("button", name="Paused")
        expect(paused).to_have_attribute("aria-disabled", "true")
        expect(paused).to_have_accessible_description("Viewers cannot pause tasks")
        expect(card.get_by_role("button", name="Completed")).to_have_accessible_description(
            "Viewers cannot change the status of tasks"
        )
        paused.press("Enter")
        expect(page.locator("#move-status")).to_have_text(
            "“Look, don't touch” cannot become paused: Viewers cannot pause tasks."
        )
        assert member.get(f"/api/v1/tasks/{task['id']}").json()["status"] == "in_progress"


def test_the_card_grid_is_a_remembered_toggle_away(
    sqlite_server: LiveServer, client: httpx.Client, new_page: NewPage
) -> None:
    """The "Card grid" button shows the grid (no Move buttons, not draggable); after a reload it is
    still the grid; "Columns by status" brings the columns back."""
    create_task(client, "One")
    create_task(client, "Two", status="in_progress")
    page = open_board(new_page, sqlite_server, 2)
    expect(page.get_by_role("button", name="Columns by status")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_role("button", name="Card grid").click()
    expect(page.locator("#task-list > .task-card")).to_have_count(2)
    expect(page.locator("#task-columns")).to_be_hidden()
    expect(page.get_by_role("button", name="Move…")).to_have_count(0)
    assert page.locator(".task-card").first.get_attribute("draggable") == "false"
    page.reload()
    expect(page.locator("#task-list > .task-card")).to_have_count(2)
    expect(page.get_by_role("button", name="Card grid")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Columns by status").click()
    expect(page.locator("#task-columns .task-card")).to_have_count(2)
    expect(card_in(page, "in_progress", "Two")).to_be_visible()
