"""Tokens on the command line, without a Taskline server: ``--token`` beats ``TASKLINE_TOKEN``,
which beats the token ``taskline login`` stored; refusals exit 7 with one line; ``login`` and
``logout`` keep the credentials file.

The server is a small stand-in (``http.server``) that checks tokens the way Taskline's
contract says and records the ``Authorization`` header of every request.
"""

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from taskline.cli.demo import start_demo_agent
from taskline.cli.errors import ExitCode
from taskline.cli.main import taskline
from taskline.sdk import credentials_path, store_token, stored_token

SCRIPT = Path(sys.executable).with_name("taskline")
MEMBER = "tl_" + "m" * 43
VIEWER = "tl_" + "v" * 43
ISSUED = "tl_" + "i" * 43
UNAUTHENTICATED = {
    "type": "https://taskline.dev/problems/unauthenticated",
    "title": "Unauthorized",
    "status": 401,
}
EMPTY_PAGE = {"items": [], "total": 0, "limit": 1, "offset": 0}


class StandIn(ThreadingHTTPServer):
    """Answers like a Taskline that checks who asks; ``seen`` holds (method, path, auth)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, str | None]] = []
        self.bodies: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def auth_of(self, path: str) -> list[str | None]:
        return [auth for _, seen_path, auth in self.seen if seen_path.startswith(path)]


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, detail: str) -> None:
        self._answer(401, {**UNAUTHENTICATED, "detail": detail}, "application/problem+json")

    def _route(self, method: str) -> None:
        auth = self.headers.get("Authorization")
        self.server.seen.append((method, self.path, auth))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.bodies.append(body)
        if self.path == "/health":
            return self._answer(200, {"status": "ok"})
        if self.path.startswith("/agui"):  # a remote AG-UI agent that fails
            return self._answer(500, {"detail": "remote agent down"})
        if self.path == "/api/v1/auth/token" and method == "POST":
            if (body or {}).get("password") != "s3cret":
                return self._refuse("wrong username or password")
            issued = {"id": "tok_1", "token": ISSUED, "name": body.get("name"), "role": "member"}
            return self._answer(201, {**issued, "expires_at": None})
        if auth is None:
            return self._refuse("sign in, or send an API token: Authorization: Bearer <token>")
        if auth not in {f"Bearer {MEMBER}", f"Bearer {VIEWER}", f"Bearer {ISSUED}"}:
            return self._refuse("the token is unknown, expired or revoked")
        if method == "POST" and auth == f"Bearer {VIEWER}":
            detail = "the viewer role may not create, change or delete tasks"
            forbidden = {"type": "https://taskline.dev/problems/forbidden", "title": "Forbidden"}
            return self._answer(403, {**forbidden, "status": 403, "detail": detail})
        if self.path.startswith("/api/v1/tasks/?"):
            return self._answer(200, EMPTY_PAGE)
        if self.path == "/api/v1/tasks/task_ok/state":
            return self._answer(200, {"task_id": "task_ok", "version": 0, "state": {}})
        if self.path.startswith("/api/v1/agents/"):
            return self._answer(200, [])
        return self._answer(404, {"status": 404, "title": "Not found", "detail": "no such task"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def run(*args: str, code: int = 0, input: str | None = None, **env: str) -> Result:
    result = CliRunner().invoke(taskline, list(args), input=input, env=env or None)
    assert result.exit_code == code, (
        f"exit {result.exit_code} != {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        f"\nexception: {result.exception!r}"
    )
    return result


# --- where the token comes from ----------------------------------------------------------


def test_option_beats_environment_beats_file(stand_in: StandIn, config: Path) -> None:
    url = stand_in.url
    run("--url", url, "agents", "list", code=ExitCode.AUTH)
    store_token(url, VIEWER)
    run("--url", url, "agents", "list")
    run("--url", url, "agents", "list", TASKLINE_TOKEN=MEMBER)
    run("--url", url, "--token", ISSUED, "agents", "list", TASKLINE_TOKEN=MEMBER)
    run("--url", url, "agents", "list", TASKLINE_TOKEN="")  # empty: unset
    assert stand_in.auth_of("/api/v1/agents/") == [
        None,
        f"Bearer {VIEWER}",
        f"Bearer {MEMBER}",
        f"Bearer {ISSUED}",
        f"Bearer {VIEWER}",
    ]


def test_the_help_says_where_a_token_comes_from_and_the_exit_code() -> None:
    text = run("--help").stdout
    assert "--token TOKEN" in text and "TASKLINE_TOKEN" in text
    assert "credentials.json" in text and "taskline login" in text
    assert "7 not signed in or not allowed" in text
    assert {"login", "logout"} <= set(taskline.commands)  # type: ignore[attr-defined]


# --- refusals: exit 7, one line ----------------------------------------------------------


def test_no_token_exits_7_saying_how_to_sign_in(stand_in: StandIn, config: Path) -> None:
    result = run("--url", stand_in.url, "tasks", "list", code=7)
    assert result.stdout == ""
    assert result.stderr == (
        f"error: not signed in to {stand_in.url}: sign in, or send an API token: "
        "Authorization: Bearer <token> (401) — run 'taskline login', or pass --token "
        "(or set TASKLINE_TOKEN)\n"
    )


def test_a_refused_token_exits_7_and_is_never_shown(stand_in: StandIn, config: Path) -> None:
    secret = "tl_" + "x" * 43
    result = run("--url", stand_in.url, "--token", secret, "tasks", "list", code=7)
    assert result.stderr.count("\n") == 1
    assert "the token is unknown, expired or revoked (401)" in result.stderr
    assert "the token was refused: run 'taskline login' again" in result.stderr
    assert secret not in result.output


def test_forbidden_exits_7_naming_what_the_role_may_not_do(stand_in: StandIn, config: Path) -> None:
    result = run("--url", stand_in.url, "--token", VIEWER, "tasks", "create", "New", code=7)
    assert result.stderr == (
        "error: not allowed: the viewer role may not create, change or delete tasks (403)\n"
    )


def test_the_console_script_exits_7_without_a_traceback(stand_in: StandIn, config: Path) -> None:
    completed = subprocess.run(
        [str(SCRIPT), "--url", stand_in.url, "tasks", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 7
    assert completed.stderr.startswith("error: not signed in to ")
    assert completed.stderr.count("\n") == 1 and "Traceback" not in completed.stderr


# --- login and logout ----------------------------------------------------------------------


def test_login_asks_and_stores_the_issued_token(stand_in: StandIn, config: Path) -> None:
    result = run("--url", stand_in.url + "/", "login", input="alice\ns3cret\n")
    path = credentials_path()
    assert path == config / "taskline" / "credentials.json"
    assert json.loads(path.read_text()) == {stand_in.url: ISSUED}
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "Username: alice" in result.stdout and "s3cret" not in result.output
    assert f"signed in to {stand_in.url} as alice (member); token stored in {path}" in (
        result.stdout
    )
    assert ISSUED not in result.output
    sign_in = stand_in.bodies[stand_in.auth_of("/").index(None)]
    assert sign_in["username"] == "alice" and sign_in["name"].startswith("taskline CLI on ")
    run("--url", stand_in.url, "tasks", "list")  # the stored token is sent from now on
    assert stand_in.seen[-1] == (
        "GET",
        "/api/v1/tasks/?sort=-created_at&limit=50&offset=0",
        f"Bearer {ISSUED}",
    )


def test_login_sends_no_old_token_and_takes_a_label(stand_in: StandIn, config: Path) -> None:
    store_token(stand_in.url, "tl_old")
    run("--url", stand_in.url, "login", "-u", "bob", "--name", "ci", input="s3cret\n")
    assert stand_in.seen[-1] == ("POST", "/api/v1/auth/token", None)
    assert stand_in.bodies[-1] == {"username": "bob", "password": "s3cret", "name": "ci"}
    assert stored_token(stand_in.url) == ISSUED


def test_a_wrong_password_exits_7_and_stores_nothing(stand_in: StandIn, config: Path) -> None:
    result = run("--url", stand_in.url, "login", "--username", "alice", input="guess\n", code=7)
    assert result.stderr == (
        f"error: {stand_in.url} refused the sign-in: wrong username or password (401)\n"
    )
    assert not credentials_path().exists()


def test_login_token_stdin_checks_then_stores(stand_in: StandIn, config: Path) -> None:
    result = run("--url", stand_in.url, "login", "--token-stdin", input=f"{MEMBER}\n")
    assert stored_token(stand_in.url) == MEMBER
    assert stand_in.seen[-1][2] == f"Bearer {MEMBER}"  # checked with one authenticated GET
    assert stand_in.seen[-1][1].startswith("/api/v1/tasks/?")
    assert MEMBER not in result.output
    refused = run("--url", stand_in.url, "login", "--token-stdin", input="tl_nope\n", code=7)
    assert "refused the token: the token is unknown, expired or revoked (401)" in refused.stderr
    assert stored_token(stand_in.url) == MEMBER  # the refused one was not stored


@pytest.mark.parametrize("given", ["", "\n", "tl_a tl_b\n"])
def test_login_token_stdin_wants_one_token(stand_in: StandIn, config: Path, given: str) -> None:
    result = run("--url", stand_in.url, "login", "--token-stdin", input=given, code=2)
    assert "expected one token on stdin" in result.stderr
    assert stand_in.seen == []


def test_login_token_stdin_does_not_sign_in(stand_in: StandIn, config: Path) -> None:
    run("--url", stand_in.url, "login", "--token-stdin", "-u", "alice", input=MEMBER, code=2)


def test_login_says_when_the_environment_token_wins(stand_in: StandIn, config: Path) -> None:
    result = run(
        "--url", stand_in.url, "login", "--token-stdin", input=MEMBER, TASKLINE_TOKEN=VIEWER
    )
    assert "TASKLINE_TOKEN is set" in result.stderr


def test_logout_forgets_only_that_server(stand_in: StandIn, config: Path) -> None:
    store_token(stand_in.url, MEMBER)
    store_token("http://elsewhere.example:8000", VIEWER)
    result = run("--url", stand_in.url, "logout")
    assert f"signed out of {stand_in.url}" in result.stdout
    assert json.loads(credentials_path().read_text()) == {"http://elsewhere.example:8000": VIEWER}
    assert run("--url", stand_in.url, "logout").stdout == f"no token stored for {stand_in.url}\n"
    run("--url", stand_in.url, "tasks", "list", code=7)


def test_login_and_logout_refuse_a_bad_url(config: Path) -> None:
    run("--url", "ftp://nowhere", "logout", code=2)
    run("--url", "ftp://nowhere", "login", "--token-stdin", input=MEMBER, code=2)


# --- the other commands that connect --------------------------------------------------------


def test_attach_sends_the_token_to_taskline_only(stand_in: StandIn, config: Path) -> None:
    """Taskline gets the token; the remote agent gets only --header."""
    store_token(stand_in.url, MEMBER)
    args = ["--url", stand_in.url, "agent", "attach", "--task", "task_x"]
    run(*args, "--agui-url", f"{stand_in.url}/agui", code=4)  # no such task at the stand-in
    assert stand_in.auth_of("/api/v1/tasks/task_x/state") == [f"Bearer {MEMBER}"]
    result = run(*args, "--agui-url", f"{stand_in.url}/agui", TASKLINE_TOKEN="tl_nope", code=7)
    assert result.stderr.startswith("error: not signed in: task task_x: the token is unknown")
    assert "run 'taskline login'" in result.stderr


def test_attach_never_sends_the_token_to_the_remote_agent(stand_in: StandIn, config: Path) -> None:
    store_token(stand_in.url, MEMBER)
    args = ["--url", stand_in.url, "agent", "attach", "--task", "task_ok", "-H", "X-Remote: 1"]
    result = run(*args, "--agui-url", f"{stand_in.url}/agui", code=1)  # the remote fails
    assert "the AG-UI agent answered 500" in result.stderr
    assert stand_in.auth_of("/api/v1/tasks/task_ok/state") == [f"Bearer {MEMBER}"]
    assert stand_in.auth_of("/agui") == [None]


def test_agent_run_sends_the_token(stand_in: StandIn, config: Path) -> None:
    result = run("--url", stand_in.url, "--token", VIEWER, "agent", "run", "--sample", code=7)
    assert "not allowed: the viewer role may not create" in result.stderr
    assert stand_in.auth_of("/api/v1/tasks/") == [f"Bearer {VIEWER}"]


def test_watch_sends_the_token(stand_in: StandIn, config: Path) -> None:
    run("--url", stand_in.url, "watch", "task_x", code=7, TASKLINE_TOKEN="tl_nope")
    run("--url", stand_in.url, "--token", MEMBER, "watch", "task_x", code=4)
    assert stand_in.auth_of("/api/v1/tasks/task_x") == ["Bearer tl_nope", f"Bearer {MEMBER}"]


def test_the_demo_agent_sends_its_token(stand_in: StandIn, config: Path) -> None:
    start_demo_agent(stand_in.url, delay=0, token=VIEWER).join(20)
    assert ("POST", "/api/v1/tasks/", f"Bearer {VIEWER}") in stand_in.seen
