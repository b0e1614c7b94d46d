"""The clients against a real server that checks who asks (``auth=True``): the SDK and the CLI
with a valid token work; without one, or with a refused one, they say so clearly (the SDK
raises :class:`TasklineAuthError` with a hint, the CLI exits 7 with one line), and a
WebSocket the server closes with 4401 or 4403 is raised instead of retried."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from taskline.cli.main import taskline
from taskline.sdk import (
    AsyncClient,
    Backoff,
    Client,
    DeliveryOptions,
    TasklineAuthError,
    credentials_path,
    store_token,
    stored_token,
)
from tests.support.auth import SecureServer, make_token, secure_server

SCRIPT = Path(sys.executable).with_name("taskline")
PASSWORD = "correct horse battery"  # ana's, in secure_server
#: Retries fast and long: a refusal must end a subscription, not the give-up time.
PATIENT = Backoff(initial=0.01, maximum=0.05, give_up_after=None)


@pytest.fixture
def secure(sqlite_url: str) -> Iterator[SecureServer]:
    with secure_server(sqlite_url) as server:
        yield server


def cli(*args: str, code: int = 0, input: str | None = None, **env: str) -> Result:
    result = CliRunner().invoke(taskline, list(args), input=input, env=env or None)
    assert result.exit_code == code, (
        f"exit {result.exit_code} != {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        f"\nexception: {result.exception!r}"
    )
    return result


# --- the SDK ------------------------------------------------------------------------------


def test_the_sdk_with_a_valid_token_works_and_without_one_says_how(
    secure: SecureServer,
) -> None:
    with Client(secure.url, token=secure.tokens["member"]) as member:
        task = member.create_task("Signed work")
        assert member.get_task(task.id).title == "Signed work"
    with Client(secure.url) as anonymous, pytest.raises(TasklineAuthError) as missing:
        anonymous.list_tasks()
    error = missing.value
    assert (error.status, error.token_sent) == (401, False)
    assert error.problem["type"] == "https://taskline.dev/problems/unauthenticated"
    assert "set TASKLINE_TOKEN" in str(error) and "taskline login" in str(error)
    with (
        Client(secure.url, token="tl_" + "x" * 43) as stranger,
        pytest.raises(TasklineAuthError) as refused,
    ):
        stranger.get_task(task.id)
    assert refused.value.token_sent and "unknown, expired or revoked" in refused.value.detail
    with (
        Client(secure.url, token=secure.tokens["viewer"]) as viewer,
        pytest.raises(TasklineAuthError) as forbidden,
    ):
        viewer.create_task("Not for viewers")
    assert forbidden.value.status == 403 and "viewer" in forbidden.value.detail
    assert forbidden.value.hint is None


def test_the_sdk_finds_the_token_in_the_environment_and_the_file(
    secure: SecureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_token(secure.url, secure.tokens["viewer"])
    with Client(secure.url) as client:
        assert client.list_tasks().total == 0
    monkeypatch.setenv("TASKLINE_TOKEN", secure.tokens["member"])
    with Client(secure.url) as client:
        client.create_task("The environment's token is a member's")


async def test_a_subscription_without_a_token_raises_instead_of_reconnecting(
    secure: SecureServer,
) -> None:
    async with AsyncClient(secure.url, token=secure.tokens["member"]) as member:
        task = await member.create_task("Watched")
    async with AsyncClient(secure.url) as anonymous:
        subscription = anonymous.subscribe(task.id, since=0, backoff=PATIENT)
        with pytest.raises(TasklineAuthError) as refused:
            async with asyncio.timeout(10):
                await anext(subscription)
    assert (refused.value.status, refused.value.token_sent) == (401, False)
    assert "sign in, or send an API token" in refused.value.detail
    assert subscription.closed and subscription.connections == 0
    async with (
        AsyncClient(secure.url, token="tl_" + "y" * 43) as stranger,
        stranger.subscribe(task.id, since=0, backoff=PATIENT) as events,
    ):
        with pytest.raises(TasklineAuthError, match="unknown, expired or revoked"):
            async with asyncio.timeout(10):
                await anext(events)


async def test_a_subscription_with_a_token_follows_the_task(secure: SecureServer) -> None:
    async with (
        AsyncClient(secure.url, token=secure.tokens["member"]) as member,
        AsyncClient(secure.url, token=secure.tokens["viewer"]) as viewer,
    ):
        task = await member.create_task("Followed")
        async with viewer.subscribe(task.id, since=0) as events:
            await member.update_task(task.id, status="in_progress")
            async with asyncio.timeout(10):
                first = await anext(events)
        assert first.seq is not None and first.task_id == task.id


def test_the_sync_subscription_raises_too(secure: SecureServer) -> None:
    with Client(secure.url, token=secure.tokens["member"]) as member:
        task = member.create_task("Sync")
    with (
        Client(secure.url) as anonymous,
        anonymous.subscribe(task.id, since=0, backoff=PATIENT) as events,
        pytest.raises(TasklineAuthError),
    ):
        next(iter(events))


async def test_an_agent_token_runs_as_its_agent_and_not_as_another(secure: SecureServer) -> None:
    async with AsyncClient(secure.url, token=secure.tokens["member"]) as member:
        await member.create_agent("Bot", id="agent_bot")
        task = await member.create_task("For the bot", assigned_agent_id="agent_bot")
    options = DeliveryOptions(backoff=PATIENT, flush_timeout=10)
    async with AsyncClient(secure.url, token=secure.tokens["agent"], delivery=options) as bot:
        async with bot.run(task.id, agent="agent_bot") as run:
            await run.progress(0.5, "Halfway")
        assert (await bot.get_task(task.id)).status == "completed"
        with pytest.raises(TasklineAuthError) as forbidden:
            async with asyncio.timeout(10), bot.connect_agent("agent_other"):
                pytest.fail("connected as another agent")
    assert forbidden.value.status == 403 and forbidden.value.token_sent
    assert "agent_other" in forbidden.value.detail


async def test_a_run_without_a_token_raises_at_once(secure: SecureServer) -> None:
    async with AsyncClient(secure.url, token=secure.tokens["member"]) as member:
        task = await member.create_task("Nobody may run this anonymously")
    options = DeliveryOptions(backoff=PATIENT, flush_timeout=10)
    async with AsyncClient(secure.url, delivery=options) as anonymous:
        with pytest.raises(TasklineAuthError) as refused:
            async with asyncio.timeout(10), anonymous.run(task.id, agent="agent_bot"):
                pytest.fail("ran without a token")
        with pytest.raises(TasklineAuthError):
            async with asyncio.timeout(10), anonymous.connect_agent("agent_bot"):
                pytest.fail("connected without a token")
    assert refused.value.status == 401


def test_a_token_revoked_while_connected_ends_the_subscription(secure: SecureServer) -> None:
    """A token revoked while its subscription is live: the server restarts, the subscription
    reconnects by itself, the server refuses the token (4401) and the subscription raises
    instead of trying again."""
    token = make_token(secure.database_url, "viewer", name="short-lived")
    with Client(secure.url, token=secure.tokens["member"]) as member:
        task = member.create_task("Revoked viewer")
    with Client(secure.url, token=token) as viewer:
        events = viewer.subscribe(task.id, since=0, backoff=PATIENT)
        with events:
            _revoke(secure, "short-lived")
            secure.server.restart()
            started = time.monotonic()
            with pytest.raises(TasklineAuthError, match="unknown, expired or revoked"):
                for _ in events:
                    pass
            assert time.monotonic() - started < 20


def _revoke(secure: SecureServer, name: str) -> None:
    """Revoke the token called ``name`` as an admin on the server's machine would."""
    database = ["--database-url", secure.database_url]
    listed = subprocess.run(
        [str(SCRIPT), "tokens", "list", *database],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token_id = next(line.split()[0] for line in listed.stdout.splitlines() if name in line)
    subprocess.run(
        [str(SCRIPT), "tokens", "revoke", token_id, *database],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


# --- the CLI ------------------------------------------------------------------------------


def test_the_cli_without_a_token_exits_7_with_one_line(secure: SecureServer) -> None:
    completed = subprocess.run(
        [str(SCRIPT), "--url", secure.url, "tasks", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 7, completed.stderr
    assert completed.stderr == (
        f"error: not signed in to {secure.url}: sign in, or send an API token: "
        "Authorization: Bearer <token> (401) — run 'taskline login', or pass --token "
        "(or set TASKLINE_TOKEN)\n"
    )
    assert completed.stdout == ""


def test_the_cli_takes_the_token_from_option_environment_or_file(secure: SecureServer) -> None:
    url = ["--url", secure.url]
    cli(*url, "--token", secure.tokens["member"], "tasks", "create", "By option")
    cli(*url, "tasks", "create", "By environment", TASKLINE_TOKEN=secure.tokens["member"])
    store_token(secure.url, secure.tokens["viewer"])
    listed = json.loads(cli(*url, "tasks", "list", "--json").stdout)
    assert {t["title"] for t in listed["items"]} == {"By option", "By environment"}
    refused = cli(*url, "tasks", "create", "By the viewer's file", code=7)
    assert refused.stderr.startswith("error: not allowed: the viewer role may not ")
    assert refused.stderr.count("\n") == 1
    wrong = cli(*url, "--token", "tl_" + "z" * 43, "agents", "list", code=7)
    assert "the token was refused: run 'taskline login' again" in wrong.stderr


def test_login_with_the_password_then_commands_use_the_token(secure: SecureServer) -> None:
    url = ["--url", secure.url]
    result = cli(*url, "login", "--username", "ana", input=f"{PASSWORD}\n")
    assert f"signed in to {secure.url} as ana (member)" in result.stdout
    token = stored_token(secure.url)
    assert token is not None and token.startswith("tl_") and len(token) == 46
    assert token not in result.output and PASSWORD not in result.output
    assert (credentials_path().stat().st_mode & 0o777) == 0o600
    created = json.loads(cli(*url, "tasks", "create", "Ana's", "--json").stdout)
    with Client(secure.url, token=secure.tokens["admin"]) as admin:
        assert admin.events(created["id"]).events[0].actor == "person:ana"
    cli(*url, "logout")
    cli(*url, "tasks", "list", code=7)


def test_login_refuses_a_wrong_password(secure: SecureServer) -> None:
    result = cli("--url", secure.url, "login", input="ana\nwrong password\n", code=7)
    assert result.stderr.startswith(f"error: {secure.url} refused the sign-in: ")
    assert stored_token(secure.url) is None


def test_login_token_stdin_checks_the_token_first(secure: SecureServer) -> None:
    url = ["--url", secure.url]
    cli(*url, "login", "--token-stdin", input=secure.tokens["viewer"] + "\n")
    assert stored_token(secure.url) == secure.tokens["viewer"]
    cli(*url, "login", "--token-stdin", input="tl_" + "q" * 43, code=7)
    assert stored_token(secure.url) == secure.tokens["viewer"]
    cli(*url, "agents", "list")


def test_watch_agent_run_and_attach_need_a_token(secure: SecureServer) -> None:
    url = ["--url", secure.url]
    created = cli(*url, "--token", secure.tokens["member"], "tasks", "create", "W", "--json")
    task_id = json.loads(created.stdout)["id"]
    watch = cli(*url, "watch", task_id, code=7)
    assert watch.stderr.startswith("error: not signed in to ")
    run = cli(*url, "--token", secure.tokens["viewer"], "agent", "run", "--sample", code=7)
    assert "not allowed" in run.stderr
    attach = cli(*url, "agent", "attach", "--task", task_id, "--agui-url", secure.url, code=7)
    assert attach.stderr.startswith("error: not signed in: ")
    assert "run 'taskline login'" in attach.stderr
