"""The "Needs you" inbox in real Chromium against a server that checks who asks: an agent
(its REST token) asks on a task it holds; ana (a member, signed in) sees the count live,
answers a question through the form its schema makes, approves with edited arguments,
rejects with a comment (from the task panel), sees the server's 422 and 409; a viewer reads
the inbox without being able to answer; the timeline shows the outcome; the card moves into
and out of "needs input" live; browser notifications are opt-in."""

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from taskline.sdk import AsyncClient
from tests.support.auth import SecureServer, make_user, secure_server
from tests.support.browser import (
    LIVE_MS,
    browser_fixture,  # noqa: F401 (fixture)
    page_factory_fixture,  # noqa: F401 (fixture)
    playwright_api,
)
from tests.support.waiting import WAIT, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, WebSocketRoute

expect = playwright_api().expect
NewPage = Callable[..., "Page"]

ANA_PASSWORD = "correct horse battery"
VIC_PASSWORD = "viewer's own password"

#: A schema the form can show: a required string, an integer with a minimum, a boolean and
#: an enum, each with a description.
DEPLOY_SCHEMA = {
    "type": "object",
    "properties": {
        "branch": {"type": "string", "title": "Branch", "description": "Which branch to deploy"},
        "replicas": {"type": "integer", "minimum": 1, "description": "How many copies"},
        "force": {"type": "boolean", "description": "Skip the checks"},
        "region": {"enum": ["eu", "us"], "description": "Where"},
    },
    "required": ["branch", "replicas"],
}


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    """Auth on: member ana, viewer vic (passwords), a token per role (agent_bot's for agents)."""
    make_user(sqlite_url, "vic", "viewer", password=VIC_PASSWORD)
    with secure_server(sqlite_url, request_sweep_interval=0.1) as server:
        yield server


@pytest.fixture
def admin(secured: SecureServer) -> Iterator[httpx.Client]:
    with secured.client("admin") as http:
        yield http


@pytest.fixture
def agent(secured: SecureServer) -> Iterator[httpx.Client]:
    """agent_bot's token: it asks on the tasks it holds."""
    with secured.client("agent") as http:
        yield http


def held_task(admin: httpx.Client, agent: httpx.Client, title: str) -> str:
    """A task created by the admin and claimed (so started) by agent_bot."""
    created = admin.post("/api/v1/tasks/", json={"title": title})
    assert created.status_code == 201, created.text
    claimed = agent.post("/api/v1/tasks/claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == created.json()["id"]
    return str(created.json()["id"])


def ask(agent: httpx.Client, task_id: str, **body: Any) -> dict[str, Any]:
    """Open a request on the task as the agent."""
    opened = agent.post(f"/api/v1/tasks/{task_id}/requests", json=body)
    assert opened.status_code == 201, opened.text
    request: dict[str, Any] = opened.json()
    return request


def approval(agent: httpx.Client, task_id: str) -> dict[str, Any]:
    action = {
        "name": "delete_branch",
        "arguments": {"branch": "old", "remote": True},
        "reason": "merged last week",
        "risk": "high",
    }
    return ask(agent, task_id, kind="approval", question="Delete the old branch?", action=action)


def sign_in(new_page: NewPage, url: str, name: str, password: str, **options: Any) -> "Page":
    """Open the UI, sign in, and wait until it is live."""
    page = new_page(url, **options)
    expect(page.locator("#sign-in-view")).to_be_visible()
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-view")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def open_inbox(page: "Page") -> "Locator":
    page.locator("#inbox-button").click()
    inbox = page.locator("#inbox")
    expect(inbox).to_be_visible()
    return inbox


def item(page: "Page", request_id: str, where: str = "#inbox") -> "Locator":
    return page.locator(f'{where} .request-item[data-request-id="{request_id}"]')


def card_in(page: "Page", column: str, title: str) -> "Locator":
    return page.locator(f'.column[data-column="{column}"] .task-card').filter(has_text=title)


class LongPoll:
    """The agent's ``GET /requests/{id}?wait=…`` in a thread, as an SDK would wait."""

    def __init__(self, secured: SecureServer, request_id: str) -> None:
        self.result: httpx.Response | None = None
        self.thread = threading.Thread(target=self._run, args=(secured, request_id), daemon=True)
        self.thread.start()

    def _run(self, secured: SecureServer, request_id: str) -> None:
        with httpx.Client(base_url=secured.url, headers=secured.headers("agent"), timeout=60) as c:
            self.result = c.get(f"/api/v1/requests/{request_id}", params={"wait": 30})

    def answer(self) -> dict[str, Any]:
        """The request the long poll returned (waiting for it, with a deadline)."""
        self.thread.join(WAIT)
        assert self.result is not None, "the long poll did not return"
        assert self.result.status_code == 200, self.result.text
        body: dict[str, Any] = self.result.json()
        return body


def test_a_question_is_answered_through_its_schema_form_and_the_card_moves_live(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """The agent asks with a schema while long-polling: the count shows 1 live and the card
    moves into "needs input"; ana fills the form (a required field left empty is refused
    here), sends it; the request is answered with typed values, the agent's long poll returns
    it, the count goes back to none and the card back to "in progress"."""
    task_id = held_task(admin, agent, "Deploy the site")
    page = sign_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    expect(card_in(page, "in_progress", "Deploy the site")).to_be_visible()
    expect(page.locator("#inbox-count")).to_be_hidden()

    asked = ask(
        agent, task_id, kind="question", question="Deploy what?", response_schema=DEPLOY_SCHEMA
    )
    poll = LongPoll(secured, asked["id"])
    expect(page.locator("#inbox-count")).to_have_text("1", timeout=LIVE_MS)
    expect(page.locator("#inbox-button")).to_have_attribute(
        "aria-label", "Needs you: 1 open request"
    )
    expect(card_in(page, "needs_input", "Deploy the site")).to_be_visible(timeout=LIVE_MS)

    open_inbox(page)
    entry = item(page, asked["id"])
    expect(entry.locator(".request-task")).to_have_text("Deploy the site")
    expect(entry.locator(".request-question")).to_contain_text("Deploy what?")
    expect(entry.locator(".request-meta")).to_contain_text("asked by agent_bot")
    expect(entry.get_by_text("Which branch to deploy")).to_be_visible()
    entry.get_by_role("button", name="Send answer").click()
    expect(entry.locator(".form-error")).to_have_text("Branch is required.")
    expect(entry.get_by_label("Branch")).to_have_attribute("aria-invalid", "true")

    entry.get_by_label("Branch").fill("main")
    entry.get_by_label("replicas").fill("3")
    entry.get_by_label("force").check()
    entry.get_by_label("region").select_option(label="eu")
    entry.get_by_label("Comment (optional)").fill("ship it")
    entry.get_by_role("button", name="Send answer").click()

    done = poll.answer()
    assert done["status"] == "answered"
    assert done["answer"] == {"branch": "main", "replicas": 3, "force": True, "region": "eu"}
    assert (done["resolved_by"], done["comment"]) == ("person:ana", "ship it")
    assert admin.get(f"/api/v1/requests/{asked['id']}").json()["status"] == "answered"
    expect(entry).to_have_count(0)
    expect(page.locator("#inbox-count")).to_be_hidden()
    expect(page.locator("#inbox-empty")).to_be_visible()
    expect(card_in(page, "in_progress", "Deploy the site")).to_be_visible(timeout=LIVE_MS)
    assert not admin.get(f"/api/v1/tasks/{task_id}").json()["needs_input"]


def test_choices_are_buttons_and_a_wrong_answer_shows_the_servers_422(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """Choices answer with one click; an answer the schema refuses (replicas 0 < minimum 1)
    shows the server's 422 in the form and the request stays open; a schema the form cannot
    show gets a JSON box."""
    task_id = held_task(admin, agent, "Pick things")
    page = sign_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    pick = ask(agent, task_id, kind="question", question="Which colour?", choices=["red", "blue"])
    deploy = ask(agent, task_id, kind="question", question="How?", response_schema=DEPLOY_SCHEMA)
    odd = ask(
        agent,
        task_id,
        kind="question",
        question="Which numbers?",
        response_schema={"type": "array", "items": {"type": "integer"}},
    )
    expect(page.locator("#inbox-count")).to_have_text("3", timeout=LIVE_MS)
    open_inbox(page)

    item(page, pick["id"]).get_by_role("button", name="blue").click()
    expect(item(page, pick["id"])).to_have_count(0)
    assert admin.get(f"/api/v1/requests/{pick['id']}").json()["answer"] == "blue"

    form = item(page, deploy["id"])
    form.get_by_label("Branch").fill("main")
    form.get_by_label("replicas").fill("0")
    form.get_by_role("button", name="Send answer").click()
    expect(form.locator(".form-error")).to_contain_text("The answer was refused:")
    expect(form.locator(".form-error")).to_contain_text("minimum")
    assert admin.get(f"/api/v1/requests/{deploy['id']}").json()["status"] == "open"

    box = item(page, odd["id"]).get_by_label("Answer (JSON)")
    box.fill("[1, 2")
    item(page, odd["id"]).get_by_role("button", name="Send answer").click()
    expect(item(page, odd["id"]).locator(".form-error")).to_contain_text("not JSON")
    box.fill("[1, 2]")
    item(page, odd["id"]).get_by_role("button", name="Send answer").click()
    expect(item(page, odd["id"])).to_have_count(0)
    assert admin.get(f"/api/v1/requests/{odd['id']}").json()["answer"] == [1, 2]
    expect(page.locator("#inbox-count")).to_have_text("1")


def test_an_approval_is_approved_with_edited_arguments(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """The approval shows the action, the reason, the risk and the arguments; ana edits the
    arguments and approves; the agent's long poll gets them."""
    task_id = held_task(admin, agent, "Tidy branches")
    page = sign_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    asked = approval(agent, task_id)
    poll = LongPoll(secured, asked["id"])
    inbox = open_inbox(page)
    entry = item(page, asked["id"])
    expect(entry).to_be_visible(timeout=LIVE_MS)
    expect(inbox.locator(".request-action code")).to_have_text("delete_branch")
    expect(entry.locator(".risk")).to_have_text("high risk")
    expect(entry).to_contain_text("Why: merged last week")
    arguments = entry.get_by_label("Arguments (JSON, editable)")
    assert '"branch": "old"' in arguments.input_value()
    arguments.fill('{"branch": "old", "remote": false}')
    entry.get_by_role("button", name="Approve").click()
    done = poll.answer()
    assert done["status"] == "approved"
    assert done["arguments"] == {"branch": "old", "remote": False}
    assert done["resolved_by"] == "person:ana"
    expect(entry).to_have_count(0)


def test_rejecting_from_the_task_panel_shows_the_outcome_in_the_timeline(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """The task panel lists the task's requests; ana rejects the open approval there with a
    comment; the panel and the timeline show who rejected it and why; an earlier answered
    question shows its answer."""
    task_id = held_task(admin, agent, "Risky work")
    earlier = ask(agent, task_id, kind="question", question="Go on?", choices=["yes", "no"])
    with secured.client("member") as ana:
        answered = ana.post(f"/api/v1/requests/{earlier['id']}/answer", json={"answer": "yes"})
        assert answered.status_code == 200, answered.text
    page = sign_in(new_page, f"{secured.url}/#/tasks/{task_id}", "ana", ANA_PASSWORD)
    expect(page.locator("#detail-title")).to_have_text("Risky work")
    done = item(page, earlier["id"], "#task-requests")
    expect(done.locator(".request-outcome")).to_have_text("Answered by ana: yes")

    asked = approval(agent, task_id)
    entry = item(page, asked["id"], "#task-requests")
    expect(entry.locator(".request-status")).to_have_text("Open", timeout=LIVE_MS)
    expect(page.locator("#requests-count")).to_have_text("(1 open of 2)")
    entry.get_by_label("Comment (optional)").fill("too risky")
    entry.get_by_role("button", name="Reject").click()
    expect(entry.locator(".request-outcome")).to_have_text(
        "Rejected by ana — “too risky”", timeout=LIVE_MS
    )
    got = admin.get(f"/api/v1/requests/{asked['id']}").json()
    assert (got["status"], got["comment"], got["resolved_by"]) == (
        "rejected",
        "too risky",
        "person:ana",
    )
    rows = page.locator('#timeline li[data-group="requests"]')
    expect(rows.filter(has_text="approval of delete_branch asked")).to_have_count(1)
    expect(rows.filter(has_text="rejected by ana — “too risky”")).to_have_count(1)
    expect(rows.filter(has_text="answered by ana: yes")).to_have_count(1)
    page.locator("#timeline-group").select_option("requests")
    expect(page.locator("#timeline li")).to_have_count(4)


def test_an_answer_sent_after_someone_else_answered_shows_the_409(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """While the page does not hear the board stream (its messages held by a route), an
    admin answers over REST; ana's answer then gets the 409, said in the form and as a
    notice, and the request is fetched again and leaves the inbox."""
    task_id = held_task(admin, agent, "Contested")
    page = sign_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    asked = ask(agent, task_id, kind="question", question="Who wins?")
    open_inbox(page)
    entry = item(page, asked["id"])
    expect(entry).to_be_visible(timeout=LIVE_MS)

    held: list[str | bytes] = []
    deaf = threading.Event()

    def relay(ws: "WebSocketRoute") -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if deaf.is_set():
                held.append(message)
            else:
                ws.send(message)

        server.on_message(to_page)

    page.route_web_socket("**/ws/board", relay)
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    entry = item(page, asked["id"])
    open_inbox(page)
    expect(entry).to_be_visible()
    deaf.set()
    won = admin.post(f"/api/v1/requests/{asked['id']}/answer", json={"answer": "the admin"})
    assert won.status_code == 200, won.text
    entry.get_by_label("Answer", exact=True).fill("ana")
    entry.get_by_role("button", name="Send answer").click()
    expect(page.locator("#notices .notice-error")).to_contain_text("Could not answer “Who wins?”")
    expect(entry).to_have_count(0)
    got = admin.get(f"/api/v1/requests/{asked['id']}").json()
    assert got["answer"] == "the admin" and got["resolved_by"].startswith("token:")


def test_a_viewer_reads_the_inbox_but_cannot_answer(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """vic (a viewer) sees the open request and why they cannot answer; every control of
    its form is disabled; the request stays open."""
    task_id = held_task(admin, agent, "Watched")
    asked = ask(agent, task_id, kind="question", question="Proceed?", choices=["yes", "no"])
    page = sign_in(new_page, f"{secured.url}/", "vic", VIC_PASSWORD)
    expect(page.locator("#inbox-count")).to_have_text("1")
    open_inbox(page)
    expect(page.locator("#inbox-note")).to_have_text(
        "Viewers cannot answer requests: you can read what the agents ask, not answer it."
    )
    entry = item(page, asked["id"])
    expect(entry.locator(".request-question")).to_contain_text("Proceed?")
    expect(entry.locator(".access-note")).to_have_text("Viewers cannot answer requests.")
    expect(entry.get_by_role("button", name="yes")).to_be_disabled()
    expect(entry.get_by_label("Comment (optional)")).to_be_disabled()
    assert admin.get(f"/api/v1/requests/{asked['id']}").json()["status"] == "open"


def test_notifications_are_opt_in_and_shown_when_a_request_opens(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """With the permission granted, nothing is shown until ana turns notifications on; then
    a new request constructs a Notification naming the asker, the task and the question;
    the choice is remembered after a reload."""
    task_id = held_task(admin, agent, "Night shift")
    page = sign_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)
    page.context.grant_permissions(["notifications"], origin=secured.url)
    page.context.add_init_script(
        """(() => {
            const Real = window.Notification;
            window.__notified = [];
            class Recorded extends Real {
                constructor(title, options) {
                    super(title, options);
                    window.__notified.push({ title, body: options && options.body });
                }
            }
            window.Notification = Recorded;
        })();"""
    )
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    ask(agent, task_id, kind="question", question="Before opting in?")
    expect(page.locator("#inbox-count")).to_have_text("1", timeout=LIVE_MS)
    assert page.evaluate("window.__notified") == []

    open_inbox(page)
    button = page.locator("#inbox-notify")
    expect(button).to_have_text("Notify me of new requests")
    button.click()
    expect(button).to_have_text("Turn off notifications")
    expect(button).to_have_attribute("aria-pressed", "true")
    ask(agent, task_id, kind="question", question="Still there?")
    wait_until(
        lambda: page.evaluate("window.__notified.length") == 1, message="a notification shown"
    )
    assert page.evaluate("window.__notified") == [
        {"title": "agent_bot needs you: Night shift", "body": "Still there?"}
    ]

    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#inbox-notify")).to_have_text("Turn off notifications")


def test_expired_cancelled_and_deleted_requests_leave_the_inbox(
    secured: SecureServer, admin: httpx.Client, agent: httpx.Client, new_page: NewPage
) -> None:
    """A request whose expiry passes, one whose task is completed and one whose task is
    deleted leave the inbox live; the task panel says "Expired unanswered" and "Cancelled
    by …"."""
    task_id = held_task(admin, agent, "Short-lived")
    page = sign_in(new_page, f"{secured.url}/#/tasks/{task_id}", "ana", ANA_PASSWORD)
    expect(page.locator("#detail-title")).to_have_text("Short-lived")
    soon = ask(agent, task_id, kind="question", question="Quick?", expires_in=1)
    later = ask(agent, task_id, kind="question", question="Later?")
    expect(page.locator("#inbox-count")).to_have_text("2", timeout=LIVE_MS)
    expect(item(page, soon["id"], "#task-requests").locator(".request-outcome")).to_have_text(
        "Expired unanswered", timeout=LIVE_MS
    )
    expect(page.locator("#inbox-count")).to_have_text("1", timeout=LIVE_MS)
    done = agent.post(f"/api/v1/tasks/{task_id}/events", json={"event_type": "task_completed"})
    assert done.status_code == 200, done.text
    expect(item(page, later["id"], "#task-requests").locator(".request-outcome")).to_contain_text(
        "Cancelled by", timeout=LIVE_MS
    )
    expect(page.locator("#inbox-count")).to_be_hidden(timeout=LIVE_MS)
    expect(page.locator('#timeline li[data-type="request.expired"]')).to_contain_text(
        "expired unanswered"
    )
    doomed = held_task(admin, agent, "Doomed")
    ask(agent, doomed, kind="question", question="Still wanted?")
    expect(page.locator("#inbox-count")).to_have_text("1", timeout=LIVE_MS)
    assert admin.delete(f"/api/v1/tasks/{doomed}").status_code == 204
    expect(page.locator("#inbox-count")).to_be_hidden(timeout=LIVE_MS)


class SdkAgent:
    """agent_bot as an SDK program, in a thread of its own: it claims the task, asks through
    ``run.ask`` (which waits), then goes on with the answer and completes the task with it."""

    def __init__(self, secured: SecureServer, question: str, schema: dict[str, Any]) -> None:
        self.answer: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._main, args=(secured, question, schema), daemon=True
        )
        self.thread.start()

    def _main(self, secured: SecureServer, question: str, schema: dict[str, Any]) -> None:
        try:
            asyncio.run(self._work(secured, question, schema))
        except BaseException as error:  # reported by finished()
            self.error = error

    async def _work(self, secured: SecureServer, question: str, schema: dict[str, Any]) -> None:
        async with AsyncClient(secured.url, token=secured.tokens["agent"]) as client:
            task = await client.claim()
            assert task is not None, "nothing to claim"
            async with client.run(task.id, agent="agent_bot") as run:
                self.answer = await run.ask(question, schema=schema, timeout=WAIT)
                await run.progress(0.5, "answered; going on")
                await run.complete({"deployed": self.answer})

    def finished(self) -> Any:
        """The answer the agent went on with (waiting for the program, with a deadline)."""
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the SDK agent did not finish"
        if self.error is not None:
            raise self.error
        return self.answer


def test_an_sdk_agent_asks_a_person_answers_in_the_browser_and_the_agent_goes_on(
    secured: SecureServer, admin: httpx.Client, new_page: NewPage
) -> None:
    """The whole loop with the real SDK: ``run.ask`` waits; ana answers in the inbox; the
    agent gets the typed answer, reports on, and completes the task with it."""
    created = admin.post("/api/v1/tasks/", json={"title": "Ship the release"})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    page = sign_in(new_page, f"{secured.url}/", "ana", ANA_PASSWORD)

    agent = SdkAgent(secured, "Ship which branch?", DEPLOY_SCHEMA)
    expect(page.locator("#inbox-count")).to_have_text("1", timeout=LIVE_MS)
    expect(card_in(page, "needs_input", "Ship the release")).to_be_visible(timeout=LIVE_MS)
    (asked,) = admin.get("/api/v1/requests", params={"status": "open"}).json()["requests"]
    assert (asked["task_id"], asked["created_by"]) == (task_id, "agent:agent_bot")

    open_inbox(page)
    entry = item(page, asked["id"])
    entry.get_by_label("Branch").fill("release")
    entry.get_by_label("replicas").fill("2")
    entry.get_by_role("button", name="Send answer").click()

    assert agent.finished() == {"branch": "release", "replicas": 2, "force": False}
    expect(card_in(page, "done", "Ship the release")).to_be_visible(timeout=LIVE_MS)
    done = admin.get(f"/api/v1/tasks/{task_id}").json()
    assert (done["status"], done["needs_input"]) == ("completed", False)
