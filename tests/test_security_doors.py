"""The doors against a browser-borne attacker and impostors: Host, Origin, media type,
sessions, agent identity, client ids, the first start and an open bind address."""

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from taskline.settings import Settings
from tests.support.auth import SecureServer, secure_server
from tests.support.server import LiveServer, free_port
from tests.support.waiting import wait_until
from tests.support.ws import open_ws, receive, receive_until

EVIL = "https://evil.example"
PASSWORD = "correct horse battery"


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def sign_in(server: SecureServer, name: str = "ana", password: str = PASSWORD) -> str:
    response = httpx.post(
        f"{server.url}/api/v1/auth/session", json={"username": name, "password": password}
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    secret = response.cookies["taskline_session"]
    assert secret.startswith("tl_")
    return secret


async def ws_close_code(url: str, **headers: str) -> int | str:
    """The close code a connection gets before any data, or ``open`` if data came."""
    try:
        async with open_ws(url, additional_headers=headers) as websocket:
            await asyncio.wait_for(websocket.recv(), 10)
            return "open"
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code


def test_a_wrong_password_and_an_unknown_person_are_the_same_401(secured: SecureServer) -> None:
    for name, password in (("ana", "wrong password"), ("nobody", PASSWORD)):
        response = httpx.post(
            f"{secured.url}/api/v1/auth/session", json={"username": name, "password": password}
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "wrong user name or password"


def test_a_session_cookie_works_only_from_the_servers_own_pages(secured: SecureServer) -> None:
    """Cookie-signed unsafe requests need an allowed Origin (CSRF); reads do not."""
    cookies = {"taskline_session": sign_in(secured)}
    own = {"Origin": secured.url}
    with httpx.Client(base_url=secured.url, cookies=cookies) as browser:
        assert browser.get("/api/v1/tasks/").status_code == 200
        made = browser.post("/api/v1/tasks/", json={"title": "mine"}, headers=own)
        assert made.status_code == 201
        task_id = made.json()["id"]
        assert made.json()["id"] and browser.get("/api/v1/auth/me").json()["actor"] == "person:ana"
        for method, path in (
            ("POST", "/api/v1/tasks/"),
            ("POST", f"/api/v1/tasks/{task_id}/pause"),
            ("DELETE", f"/api/v1/tasks/{task_id}"),
        ):
            forged = browser.request(method, path, json={"title": "x"}, headers={"Origin": EVIL})
            assert forged.status_code == 403, (method, path)
            assert "evil.example" in forged.json()["detail"]
            no_origin = browser.request(method, path, json={"title": "x"})
            assert no_origin.status_code == 403
        assert browser.get(f"/api/v1/tasks/{task_id}").json()["status"] == "pending"


def test_signing_out_ends_the_session(secured: SecureServer) -> None:
    secret = sign_in(secured)
    with httpx.Client(base_url=secured.url, cookies={"taskline_session": secret}) as browser:
        assert browser.get("/api/v1/auth/me").status_code == 200
        out = browser.delete("/api/v1/auth/session", headers={"Origin": secured.url})
        assert out.status_code == 204
    # the old cookie, replayed, is refused: the session was revoked, not only forgotten
    replay = httpx.get(f"{secured.url}/api/v1/tasks/", cookies={"taskline_session": secret})
    assert replay.status_code == 401
    assert "sign in again" in replay.json()["detail"]


def test_a_dead_session_cookie_does_not_lock_the_browser_out(secured: SecureServer) -> None:
    """A session revoked elsewhere leaves its HttpOnly cookie in the browser, which the page
    cannot clear: signing in and out still work with it (it counts as no credential there),
    while everything else still refuses it."""
    dead = sign_in(secured)
    with httpx.Client(base_url=secured.url, cookies={"taskline_session": dead}) as elsewhere:
        assert elsewhere.delete("/api/v1/auth/session", headers={"Origin": secured.url}).is_success
    own = {"Origin": secured.url}
    with httpx.Client(base_url=secured.url, cookies={"taskline_session": dead}) as browser:
        assert browser.get("/api/v1/tasks/").status_code == 401
        again = browser.post(
            "/api/v1/auth/session", json={"username": "ana", "password": PASSWORD}, headers=own
        )
        assert again.status_code == 200, again.text
        fresh = again.cookies["taskline_session"]
        assert fresh not in ("", dead)
    assert httpx.get(f"{secured.url}/api/v1/tasks/", cookies={"taskline_session": fresh}).is_success
    with httpx.Client(base_url=secured.url, cookies={"taskline_session": dead}) as browser:
        assert browser.delete("/api/v1/auth/session", headers=own).status_code == 204
        forged = browser.post(
            "/api/v1/auth/session",
            json={"username": "ana", "password": PASSWORD},
            headers={"Origin": EVIL},
        )
        assert forged.status_code == 403  # the Origin check still applies


def test_a_body_not_sent_as_json_is_415(secured: SecureServer) -> None:
    """What a form or a no-preflight fetch from another page can send is refused unread."""
    with secured.client("member") as member:
        task_id = member.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
        for path in ("/api/v1/tasks/", "/api/v1/agui", "/api/v1/tasks/import"):
            for content_type in ("text/plain", "application/x-www-form-urlencoded"):
                refused = member.post(
                    path, content=b'{"title": "x"}', headers={"Content-Type": content_type}
                )
                assert refused.status_code == 415, (path, content_type)
                assert content_type in refused.json()["detail"]
        assert member.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200  # no body


def test_a_foreign_host_is_refused(secured: SecureServer) -> None:
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1."""
    with secured.client("admin") as admin:
        refused = admin.get("/api/v1/tasks/", headers={"Host": "evil.example"})
        assert refused.status_code == 400
        assert "evil.example" in refused.json()["detail"]
        assert admin.get("/health", headers={"Host": "evil.example:80"}).status_code == 400
        assert admin.get("/health", headers={"Host": "localhost"}).status_code == 200
    code = asyncio.run(
        ws_close_code(
            f"{secured.ws_url}/ws/board",
            Host="evil.example",
            Authorization=f"Bearer {secured.tokens['admin']}",
        )
    )
    assert code == 4403


def test_websockets_refuse_a_foreign_origin_with_a_cookie(secured: SecureServer) -> None:
    """Cross-site WebSocket hijacking: a page elsewhere opening a socket with the cookie."""
    cookie = f"taskline_session={sign_in(secured)}"
    with secured.client("admin") as admin:
        task_id = admin.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
    for path in (f"/ws/tasks/{task_id}", "/ws/board"):
        url = secured.ws_url + path
        assert asyncio.run(ws_close_code(url, Cookie=cookie, Origin=EVIL)) == 4403
        assert asyncio.run(ws_close_code(url, Cookie=cookie, Origin=secured.url)) == "open"
        assert asyncio.run(ws_close_code(url)) == 4401
        assert asyncio.run(ws_close_code(url, Cookie="taskline_session=tl_forged")) == 4401
    code = asyncio.run(
        ws_close_code(f"{secured.ws_url}/ws/agents/agent_bot", Cookie=cookie, Origin=EVIL)
    )
    assert code == 4403


def test_an_agent_token_connects_only_as_its_agent(secured: SecureServer) -> None:
    """The impostor of the issue: another principal cannot take over agent_bot's socket."""
    agent = {"Authorization": f"Bearer {secured.tokens['agent']}"}
    member = {"Authorization": f"Bearer {secured.tokens['member']}"}
    with secured.client("admin") as admin:
        admin.post("/api/v1/agents/", json={"id": "agent_bot", "name": "Bot"})
        own = admin.post(
            "/api/v1/tasks/", json={"title": "bot's", "assigned_agent_id": "agent_bot"}
        ).json()["id"]
        foreign = admin.post("/api/v1/tasks/", json={"title": "nobody's"}).json()["id"]

    async def scenario() -> None:
        url = f"{secured.ws_url}/ws/agents/agent_bot"
        async with open_ws(url, additional_headers=agent) as real:
            welcome = await receive(real)
            assert welcome["type"] == "welcome", welcome
            assert await ws_close_code(url, **member) == 4403
            assert await ws_close_code(f"{secured.ws_url}/ws/agents/agent_else", **agent) == 4403
            assert await ws_close_code(url) == 4401
            # the real agent is still connected: it answers a ping
            await real.send(json.dumps({"type": "ping"}))
            while (await receive(real))["type"] != "pong":
                pass
            # and it publishes on its own task only; elsewhere a nack says why (403)
            for task_id, expected in ((own, "ack"), (foreign, "nack")):
                event = {"event_type": "progress_update", "data": {"progress": 0.5}}
                await real.send(
                    json.dumps(
                        {
                            "type": "publish",
                            "batch_id": task_id,
                            "task_id": task_id,
                            "events": [event],
                        }
                    )
                )
                while (answer := await receive(real))["type"] not in {"ack", "nack"}:
                    pass
                assert answer["type"] == expected and answer["batch_id"] == task_id
            assert answer["status"] == 403 and "agent_bot" in answer["error"]["detail"]

    asyncio.run(scenario())


def test_a_client_id_belongs_to_whoever_used_it_first(secured: SecureServer) -> None:
    """Connecting with another principal's client_id (to take its queued messages) is 4403."""
    with secured.client("admin") as admin:
        task_id = admin.post("/api/v1/tasks/", json={"title": "t"}).json()["id"]
    url = f"{secured.ws_url}/ws/tasks/{task_id}?client_id=client_anas1"
    ana = {"Authorization": f"Bearer {secured.tokens['member']}"}
    viewer = {"Authorization": f"Bearer {secured.tokens['viewer']}"}

    async def scenario() -> None:
        assert await ws_close_code(url, **ana) == "open"
        with httpx.Client(base_url=secured.url, headers=ana) as http:
            sent = http.post("/api/v1/clients/client_anas1/messages", json={"secret": 42})
            assert sent.json()["queued"] == 1  # ana is away: queued for her
        assert await ws_close_code(url, **viewer) == 4403
        async with open_ws(url, additional_headers=ana) as back:
            frames = await receive_until(back, "personal_message")
            assert frames[-1]["data"]["secret"] == 42

    asyncio.run(scenario())


def test_the_connection_status_is_for_admins(secured: SecureServer) -> None:
    for role in ("member", "agent", "viewer"):
        with secured.client(role) as http:
            refused = http.get("/api/v1/websocket/status")
            assert refused.status_code == 403
            assert "admin" in refused.json()["detail"]
    with secured.client("admin") as admin:
        assert admin.get("/api/v1/websocket/status").status_code == 200


def test_tokens_revoked_or_expired_stop_working(secured: SecureServer, tmp_path: Path) -> None:
    """``taskline tokens revoke`` (another process, on the database) ends a token within the
    documented 10 seconds."""
    env = {"TASKLINE_DATABASE_URL": secured.database_url}
    created = _taskline("tokens", "create", "ci", "--role", "viewer", env=env)
    secret = created.stdout.strip()
    token_id = re.search(r"tok_\w+", created.stderr)
    assert token_id is not None
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{secured.url}/api/v1/tasks/", headers=headers).status_code == 200
    _taskline("tokens", "revoke", token_id.group(), env=env)
    listed = _taskline("tokens", "list", env=env).stdout
    assert token_id.group() in listed and "revoked" in listed
    wait_until(
        lambda: httpx.get(f"{secured.url}/api/v1/tasks/", headers=headers).status_code == 401,
        timeout=20,
        message="the revoked token still works",
    )


def _taskline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    done = subprocess.run(
        [sys.executable, "-m", "taskline", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_first_start_prints_a_sign_in_link_that_works_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`taskline serve` on an empty database: an admin is created and a one-time link printed
    (the two-command first run); the link signs the browser in, and only once."""
    import os

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskline", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TASKLINE_DATABASE_URL": sqlite_url, "TASKLINE_AUTH": "true"},
        )
    try:
        found: list[str] = []

        def link_printed() -> bool:
            found[:] = re.findall(r"http://\S+/auth/link\?token=\S+", log.read_text())
            return bool(found)

        wait_until(link_printed, timeout=30, message="no sign-in link printed")
        link = found[0]

        def answering() -> bool:  # the link is printed at start-up, before the port is bound
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answering, timeout=30, message="the server never answered")
        with httpx.Client(follow_redirects=False) as browser:
            signed = browser.get(link)
            assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
            me = browser.get(f"http://127.0.0.1:{port}/api/v1/auth/me").json()
            assert me["actor"] == "person:admin" and me["role"] == "admin"
        again = httpx.get(link)
        assert again.status_code == 401
        assert "used already" in again.json()["detail"]
    finally:
        process.terminate()
        process.wait(20)


def test_an_open_bind_address_without_auth_refuses_to_start(sqlite_url: str) -> None:
    import os

    env = {**os.environ, "TASKLINE_DATABASE_URL": sqlite_url, "TASKLINE_AUTH": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "taskline", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--insecure" in done.stderr and "Traceback" not in done.stderr


def test_an_open_bind_address_over_plain_http_warns(sqlite_url: str) -> None:
    from taskline.cli.serve import exposure_warnings

    warned = exposure_warnings(Settings(database_url=sqlite_url, host="0.0.0.0", auth=True))
    assert warned and "TLS" in warned[0]
    quiet = Settings(
        database_url=sqlite_url, host="0.0.0.0", auth=True, public_url="https://tl.example"
    )
    assert exposure_warnings(quiet) == []
    assert (
        "no authentication"
        in exposure_warnings(Settings(database_url=sqlite_url, host="0.0.0.0", insecure=True))[0]
    )


def test_security_headers_on_every_response(secured: SecureServer) -> None:
    for path in ("/health", "/api/v1/tasks/", "/ui/"):
        response = httpx.get(secured.url + path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
    page = httpx.get(secured.url + "/ui/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_insecure_lets_everyone_do_everything(sqlite_url: str) -> None:
    server = LiveServer(Settings(database_url=sqlite_url, insecure=True))
    server.start()
    try:
        made = httpx.post(f"{server.url}/api/v1/tasks/", json={"title": "open"})
        assert made.status_code == 201
        assert httpx.get(f"{server.url}/api/v1/auth/me").json()["auth"] is False
    finally:
        server.stop()
