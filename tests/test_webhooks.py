"""Outgoing webhooks against a real server on SQLite and PostgreSQL and a real local HTTP
receiver: signatures an independent receiver (the ``standardwebhooks`` package) accepts,
retries with backoff, giving up, Slack and Discord bodies, the delivery log, the test
button, who may, and exactly one delivered answer per delivery across kill -9."""

import itertools
import json
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from standardwebhooks import Webhook as Verifier

from taskline.cli.main import taskline
from taskline.domain.webhooks import new_secret, secret_key, sign
from tests.support.auth import SecureServer, secure_server
from tests.support.process import ServerProcess
from tests.support.receiver import Receiver, receiver
from tests.support.rest import new_task, publish
from tests.support.waiting import holds_for, wait_until

HOOKS = "/api/v1/webhooks/"
#: The first wait after a failed attempt, in seconds (doubled after each further one).
BACKOFF = 0.2


@pytest.fixture
def secured(database_url: str) -> Iterator[SecureServer]:
    with secure_server(
        database_url,
        webhook_backoff=BACKOFF,
        webhook_max_attempts=3,
        webhook_poll_interval=0.1,
        webhook_timeout=5.0,
    ) as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def _add(admin: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    created = admin.post(HOOKS, json={"url": url, **fields})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _deliveries(admin: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = admin.get(f"{HOOKS}{webhook_id}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


def _tested(admin: httpx.Client, webhook_id: str) -> dict[str, Any]:
    """POST /test, then the delivery once its first attempt has an outcome (the answer comes
    after a second at most; a busy machine may need longer)."""
    answer = admin.post(f"{HOOKS}{webhook_id}/test")
    assert answer.status_code == 200, answer.text
    first: dict[str, Any] = answer.json()
    assert first["event_type"] == "webhook.test"

    def attempted() -> dict[str, Any] | None:
        for delivery in _deliveries(admin, webhook_id):
            if delivery["id"] == first["id"] and (
                delivery["status"] in {"delivered", "failed"}
                or (delivery["status"] == "pending" and delivery["attempts"] > 0)
            ):
                return delivery
        return None

    return wait_until(attempted, message="the test delivery's first attempt")


def _complete(client: httpx.Client, task_id: str) -> None:
    publish(client, task_id, {"event_type": "task_started"})
    publish(client, task_id, {"event_type": "task_completed", "data": {"reason": "all done"}})


def test_sign_matches_the_standard_webhooks_package() -> None:
    """Our signature is the one the standardwebhooks package computes, and verifies."""
    secret = new_secret()
    body = b'{"type":"task_completed"}'
    header = sign(secret_key(secret), "msg_abc", 1_700_000_000, body)
    expected = Verifier(secret).sign(
        "msg_abc", datetime.fromtimestamp(1_700_000_000), body.decode()
    )
    assert header == expected and header.startswith("v1,")


def test_a_completed_task_is_delivered_signed(secured: SecureServer, hooks: Receiver) -> None:
    """A webhook on task_completed gets that event only, once, signed so that an independent
    Standard Webhooks receiver accepts it; the delivery log says delivered on attempt 1."""
    with secured.client("admin") as admin:
        webhook = _add(admin, hooks.url(), events=["task_completed"])
        assert webhook["secret"].startswith("whsec_") and webhook["format"] == "standard"
        assert "secret" not in admin.get(f"{HOOKS}{webhook['id']}").json()
        task_id = new_task(admin, "Ship it")
        _complete(admin, task_id)
        [got] = wait_until(lambda: hooks.on("/hook"), message="the delivery")
        payload = Verifier(webhook["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "task_completed"
        assert payload["data"]["task_id"] == task_id
        assert payload["data"]["event_type"] == "task_completed"
        assert payload["data"]["data"]["reason"] == "all done"
        assert payload["data"]["actor"].startswith("token:")
        assert got.headers["content-type"] == "application/json"
        [logged] = wait_until(
            lambda: [d for d in _deliveries(admin, webhook["id"]) if d["status"] == "delivered"],
            message="delivered in the log",
        )
        assert logged["id"] == got.headers["webhook-id"]
        assert (logged["attempts"], logged["response_status"]) == (1, 200)
        assert logged["event_id"] == payload["data"]["id"] and logged["next_attempt_at"] is None
        tampered = dict(got.headers, **{"webhook-id": "msg_other"})
        with pytest.raises(Exception, match="signature"):
            Verifier(webhook["secret"]).verify(got.body, tampered)


def test_retries_with_backoff_then_gives_up(secured: SecureServer) -> None:
    """A receiver that fails twice (500) gets the same delivery a third time, no sooner than
    the doubling backoff allows, and it is delivered; one that always fails is given up
    after the last attempt (failed, with the answer's status and text)."""
    flaky = {"/flaky": 2, "/down": 99}
    with (
        receiver(lambda path, n, same: 500 if same < flaky[path] else 204) as hooks,
        secured.client("admin") as admin,
    ):
        first = _add(admin, hooks.url("/flaky"), events=["custom"])
        second = _add(admin, hooks.url("/down"), events=["custom"])
        task_id = new_task(admin)
        publish(admin, task_id, {"event_type": "custom", "data": {"name": "x", "value": 1}})
        [done] = wait_until(
            lambda: _deliveries(admin, first["id"], status="delivered"), message="delivered"
        )
        assert (done["attempts"], done["response_status"], done["error"]) == (3, 204, None)
        attempts = hooks.on("/flaky")
        assert [r.status for r in attempts] == [500, 500, 204]
        assert len({r.headers["webhook-id"] for r in attempts}) == 1
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
        assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, gaps
        [failed] = wait_until(
            lambda: _deliveries(admin, second["id"], status="failed"), message="given up"
        )
        assert (failed["attempts"], failed["response_status"]) == (3, 500)
        assert failed["error"] == "HTTP 500: receiver says no" and failed["next_attempt_at"] is None
        assert len(hooks.on("/down")) == 3


def test_slack_and_discord_bodies(secured: SecureServer, hooks: Receiver) -> None:
    """Slack gets {"text": one line}, Discord {"content": one line}, naming the event."""
    with secured.client("admin") as admin:
        _add(admin, hooks.url("/slack"), events=["task_failed"], format="slack")
        _add(admin, hooks.url("/discord"), events=["task_*"], format="discord")
        task_id = new_task(admin, "Risky")
        publish(admin, task_id, {"event_type": "task_started"})
        publish(admin, task_id, {"event_type": "task_failed", "data": {"error": "disk full"}})
        [slack] = wait_until(lambda: hooks.on("/slack"), message="slack")
        assert list(slack.json()) == ["text"]
        text = slack.json()["text"]
        assert "\n" not in text and "task_failed" in text and task_id in text
        assert "disk full" in text
        wait_until(lambda: len(hooks.on("/discord")) == 3, message="created, started, failed")
        contents = [r.json() for r in hooks.on("/discord")]
        assert all(list(c) == ["content"] for c in contents)
        assert sorted(c["content"].split(" on ")[0] for c in contents) == [
            "Taskline: task_created",
            "Taskline: task_failed",
            "Taskline: task_started",
        ]


def test_test_button_and_the_delivery_log(secured: SecureServer) -> None:
    """POST /test sends a webhook.test message: delivered, or pending with the failure
    after its first attempt; both are in the log, newest first. A disabled webhook gets
    test deliveries but no events until it is enabled again."""
    with (
        receiver(lambda path, n, same: 503 if path == "/broken" else 200) as hooks,
        secured.client("admin") as admin,
    ):
        good = _add(admin, hooks.url(), enabled=False)
        assert _tested(admin, good["id"])["status"] == "delivered"
        [got] = hooks.on("/hook")
        message = Verifier(good["secret"]).verify(got.body, got.headers)
        assert message["type"] == "webhook.test"
        assert message["data"]["webhook_id"] == good["id"]
        broken = _add(admin, hooks.url("/broken"), events=["custom"])
        answer = _tested(admin, broken["id"])
        assert (answer["status"], answer["attempts"], answer["response_status"]) == (
            "pending",
            1,
            503,
        )
        assert answer["next_attempt_at"] is not None and "503" in answer["error"]
        task_id = new_task(admin)
        publish(admin, task_id, {"event_type": "custom", "data": {"name": "n", "value": 2}})
        wait_until(lambda: len(_deliveries(admin, broken["id"])) == 2, message="the event too")
        log = _deliveries(admin, broken["id"])
        assert [d["event_type"] for d in log] == ["custom", "webhook.test"]
        # the disabled webhook took no event: a bounded window is the only way to show that
        holds_for(
            lambda: len(hooks.on("/hook")) == 1, 0.5, message="no events for the disabled one"
        )
        enabled = admin.patch(f"{HOOKS}{good['id']}", json={"enabled": True})
        assert enabled.status_code == 200 and enabled.json()["enabled"] is True
        publish(admin, task_id, {"event_type": "custom", "data": {"name": "n", "value": 3}})
        wait_until(lambda: len(hooks.on("/hook")) == 2, message="events once enabled")
        assert hooks.on("/hook")[1].json()["data"]["data"]["value"] == 3


def test_crud_and_validation(secured: SecureServer, hooks: Receiver) -> None:
    """List, get, patch, delete; a given secret is kept; bad urls, secrets and patterns are
    422 naming the field; unknown ids 404."""
    with secured.client("admin") as admin:
        secret = new_secret()
        made = _add(admin, hooks.url(), secret=secret, events=["request.*", "lease.expired"])
        assert made["secret"] == secret and made["events"] == ["request.*", "lease.expired"]
        assert [w["id"] for w in admin.get(HOOKS).json()["webhooks"]] == [made["id"]]
        changed = admin.patch(
            f"{HOOKS}{made['id']}", json={"format": "slack", "description": "ops channel"}
        ).json()
        assert (changed["format"], changed["description"]) == ("slack", "ops channel")
        for body, field in [
            ({"url": "ftp://example.com/x"}, "url"),
            ({"url": hooks.url(), "secret": "whsec_short"}, "secret"),
            ({"url": hooks.url(), "secret": "whsec_" + "!" * 44}, "secret"),
            ({"url": hooks.url(), "events": ["Task Done"]}, "events.0"),
            ({"url": hooks.url(), "events": []}, "events"),
            ({"url": hooks.url(), "format": "teams"}, "format"),
        ]:
            refused = admin.post(HOOKS, json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in refused.json()["errors"]], refused.json()
        assert admin.delete(f"{HOOKS}{made['id']}").status_code == 204
        for method, path in [
            ("GET", made["id"]),
            ("PATCH", made["id"]),
            ("DELETE", made["id"]),
            ("GET", f"{made['id']}/deliveries"),
            ("POST", f"{made['id']}/test"),
        ]:
            gone = admin.request(method, f"{HOOKS}{path}", json={} if method == "PATCH" else None)
            assert gone.status_code == 404, (method, path, gone.text)


def test_only_admins_manage_webhooks(secured: SecureServer, hooks: Receiver) -> None:
    """Members, agents and viewers get 403 on every webhook operation; nobody signed 401."""
    with secured.client("admin") as admin:
        webhook_id = _add(admin, hooks.url())["id"]
    operations = [
        ("GET", HOOKS, None),
        ("POST", HOOKS, {"url": hooks.url()}),
        ("GET", f"{HOOKS}{webhook_id}", None),
        ("PATCH", f"{HOOKS}{webhook_id}", {"enabled": False}),
        ("DELETE", f"{HOOKS}{webhook_id}", None),
        ("GET", f"{HOOKS}{webhook_id}/deliveries", None),
        ("POST", f"{HOOKS}{webhook_id}/test", None),
    ]
    for role, expected in [("member", 403), ("agent", 403), ("viewer", 403), (None, 401)]:
        with secured.client(role) as client:
            for method, path, body in operations:
                answer = client.request(method, path, json=body)
                assert answer.status_code == expected, (role, method, path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
    assert hooks.on("/hook") == []


def test_exactly_one_delivered_answer_per_delivery_across_kill_9(
    database_url: str, tmp_path: Path
) -> None:
    """Deliveries that failed are waiting for their retry when the server is killed (SIGKILL);
    after the restart each is delivered, and no webhook-id ever gets a second 2xx, also after a
    second kill once everything was delivered. The receiver refuses everything until the
    restart, so the kill can come at any moment of the first server's attempts: none of them
    was a success that the killed server could not record (that window, between a receiver's
    2xx and the commit of ``delivered``, is the documented at-least-once edge)."""
    with receiver(lambda path, n, same: 500) as hooks:
        server = ServerProcess(
            database_url,
            tmp_path / "server.log",
            TASKLINE_WEBHOOK_BACKOFF="0.5",
            TASKLINE_WEBHOOK_BACKOFF_MAX="1",
            TASKLINE_WEBHOOK_TIMEOUT="2",
            TASKLINE_WEBHOOK_POLL_INTERVAL="0.1",
        )
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                webhook = _add(http, hooks.url(), events=["custom"])
                task_id = new_task(http)
                for n in range(5):
                    publish(
                        http, task_id, {"event_type": "custom", "data": {"name": "n", "value": n}}
                    )

                def failed_once() -> set[str]:
                    return {r.headers["webhook-id"] for r in hooks.on("/hook") if r.status == 500}

                wait_until(lambda: len(failed_once()) == 5, message="each failed once")
                assert not _deliveries(http, webhook["id"], status="delivered")
            server.kill()
            assert server.process is not None and server.process.returncode == -signal.SIGKILL
            hooks.answer = lambda path, n, same: 200
            server.start()
            with httpx.Client(base_url=server.url, timeout=10) as http:
                wait_until(
                    lambda: len(_deliveries(http, webhook["id"], status="delivered")) == 5,
                    message="delivered after the restart",
                )
                for n in range(5, 8):
                    publish(
                        http, task_id, {"event_type": "custom", "data": {"name": "n", "value": n}}
                    )
                wait_until(
                    lambda: len(_deliveries(http, webhook["id"], status="delivered")) == 8,
                    message="the new events too",
                )
            received = len(hooks.on("/hook"))
            server.kill()
            server.start()
            # nothing delivered is sent again: a bounded window is the only way to show that
            holds_for(
                lambda: len(hooks.on("/hook")) == received, 1.5, message="no resend after delivered"
            )
        finally:
            server.stop()
        delivered = hooks.delivered("/hook")
        assert len(delivered) == 8 and set(delivered.values()) == {1}, delivered
        values = sorted(
            r.json()["data"]["data"]["value"] for r in hooks.on("/hook") if r.status == 200
        )
        assert values == list(range(8))


def test_cli_add_list_test_deliveries_remove(secured: SecureServer, hooks: Receiver) -> None:
    """``taskline webhooks``: add prints the secret once, list, test (exit 0 when
    delivered), deliveries, remove; a member's token is refused (exit 7)."""

    def run(token: str, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(taskline, ["--url", secured.url, "--token", token, *args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    admin = secured.tokens["admin"]
    added = run(admin, "webhooks", "add", hooks.url(), "--event", "task_completed", "--json")
    made = json.loads(added.stdout)
    assert made["events"] == ["task_completed"] and made["secret"].startswith("whsec_")
    plain = run(admin, "webhooks", "add", hooks.url("/other"), "--format", "slack")
    assert "signing secret (shown only now): whsec_" in plain.stdout
    listed = run(admin, "webhooks", "list")
    assert made["id"] in listed.stdout and "slack" in listed.stdout
    tested = run(admin, "webhooks", "test", made["id"])
    assert "webhook.test  delivered  attempts 1  HTTP 200" in tested.stdout
    log = run(admin, "webhooks", "deliveries", made["id"])
    assert "webhook.test  delivered" in log.stdout
    assert "removed" in run(admin, "webhooks", "remove", made["id"]).stdout
    assert made["id"] not in run(admin, "webhooks", "list").stdout
    refused = run(secured.tokens["member"], "webhooks", "list", code=7)
    assert "admin" in refused.stderr


def test_an_event_trimmed_before_its_retry_is_given_up(database_url: str) -> None:
    """With retention keeping one event per task, a delivery whose event was trimmed before
    its retry is failed, saying why; the newer event is still delivered."""
    with (
        receiver(lambda path, n, same: 500 if same == 0 else 200) as hooks,
        secure_server(
            database_url, event_retention=1, webhook_backoff=BACKOFF, webhook_poll_interval=0.1
        ) as server,
        server.client("admin") as admin,
    ):
        webhook = _add(admin, hooks.url(), events=["custom"])
        task_id = new_task(admin)
        publish(admin, task_id, {"event_type": "custom", "data": {"name": "a", "value": 1}})
        wait_until(
            lambda: [d for d in _deliveries(admin, webhook["id"]) if d["attempts"] == 1],
            message="the first attempt",
        )
        publish(admin, task_id, {"event_type": "custom", "data": {"name": "b", "value": 2}})
        [failed] = wait_until(
            lambda: _deliveries(admin, webhook["id"], status="failed"), message="given up"
        )
        assert failed["error"] == "the event is no longer in the log (retention)"
        [delivered] = wait_until(
            lambda: _deliveries(admin, webhook["id"], status="delivered"), message="delivered"
        )
        assert delivered["attempts"] == 2
        assert [r.json()["data"]["data"]["name"] for r in hooks.on("/hook")] == ["a", "b", "b"]


def test_a_failing_endpoint_holds_back_its_other_deliveries(database_url: str) -> None:
    """After a failed attempt the webhook is held until its retry (held_until): events that
    come meanwhile wait too, unattempted, instead of each costing an attempt; once the retry
    succeeds, all are delivered."""
    with (
        receiver(lambda path, n, same: 500 if n == 0 else 200) as hooks,
        secure_server(database_url, webhook_backoff=3.0, webhook_poll_interval=0.1) as server,
        server.client("admin") as admin,
    ):
        webhook = _add(admin, hooks.url(), events=["custom"])
        task_id = new_task(admin)
        publish(admin, task_id, {"event_type": "custom", "data": {"name": "n", "value": 0}})
        [first] = wait_until(
            lambda: (
                _deliveries(admin, webhook["id"], status="pending")
                and [d for d in _deliveries(admin, webhook["id"]) if d["attempts"] == 1]
            ),
            message="the failed first attempt",
        )
        held = admin.get(f"{HOOKS}{webhook['id']}").json()["held_until"]
        assert held == first["next_attempt_at"]
        for n in range(1, 4):
            publish(admin, task_id, {"event_type": "custom", "data": {"name": "n", "value": n}})
        waiting = wait_until(
            lambda: [d for d in _deliveries(admin, webhook["id"]) if d["attempts"] == 0],
            message="the later events enqueued",
        )
        assert len(hooks.on("/hook")) == 1  # the retry is 3 s away: nothing else was tried
        assert all(d["next_attempt_at"] == held for d in waiting)
        wait_until(
            lambda: len(_deliveries(admin, webhook["id"], status="delivered")) == 4,
            message="all delivered after the retry",
        )
        assert admin.get(f"{HOOKS}{webhook['id']}").json()["held_until"] is None
        assert len(hooks.on("/hook")) == 5
