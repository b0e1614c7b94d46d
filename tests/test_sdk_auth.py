"""Tokens in the SDK, without a Taskline server: where a client's token comes from (argument,
``TASKLINE_TOKEN``, the credentials file), that every request and WebSocket upgrade carries
it, and that a refusal (401/403, close 4401/4403) is a :class:`TasklineAuthError` that the
live side raises instead of reconnecting forever.

The WebSocket peers are tiny ``websockets`` servers that play the refusing server's part.
"""

import asyncio
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from taskline.sdk import (
    ApiError,
    AsyncClient,
    Backoff,
    Client,
    CredentialsError,
    DeliveryOptions,
    NotFound,
    TasklineAuthError,
    TasklineClientError,
    credentials_path,
    remove_token,
    resolve_token,
    server_key,
    store_token,
    stored_token,
)

TOKEN = "tl_" + "a" * 43
OTHER = "tl_" + "b" * 43
UNAUTHENTICATED = {
    "type": "https://taskline.dev/problems/unauthenticated",
    "title": "Unauthorized",
    "status": 401,
    "detail": "sign in, or send an API token: Authorization: Bearer <token>",
}
FORBIDDEN = {
    "type": "https://taskline.dev/problems/forbidden",
    "title": "Forbidden",
    "status": 403,
    "detail": "the viewer role may not create, change or delete tasks",
}
PAGE = {"items": [], "total": 0, "limit": 1, "offset": 0}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty XDG config folder; the credentials file goes under it."""
    folder = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


# --- the credentials file --------------------------------------------------------------------


def test_the_file_lives_under_xdg_config_home_or_dot_config(tmp_path: Path) -> None:
    home = Path.home()
    assert credentials_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "taskline" / "credentials.json"
    )
    for unset in ({}, {"XDG_CONFIG_HOME": ""}, {"XDG_CONFIG_HOME": "relative/dir"}):
        assert credentials_path(unset) == home / ".config" / "taskline" / "credentials.json"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("HTTP://LocalHost:8000/prefix/?x=1", "http://localhost:8000"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com/", "https://example.com:443"),
        ("https://example.com:443", "https://example.com:443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_servers_are_keyed_by_scheme_host_and_port(url: str, key: str) -> None:
    assert server_key(url) == key


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://", "http://h:99999"])
def test_a_key_needs_an_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="invalid server URL"):
        server_key(url)


def test_storing_makes_a_private_file_and_keeps_other_servers(config: Path) -> None:
    path = store_token("http://127.0.0.1:8000/", TOKEN)
    assert path == config / "taskline" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    store_token("https://taskline.example.com", OTHER)
    store_token("http://127.0.0.1:8000", OTHER)  # replaces that server's token
    assert json.loads(path.read_text()) == {
        "http://127.0.0.1:8000": OTHER,
        "https://taskline.example.com:443": OTHER,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored_token("http://127.0.0.1:8000") == OTHER
    assert stored_token("http://127.0.0.1:9000") is None
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary left


def test_a_looser_file_is_made_private_when_written(config: Path) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    path.chmod(0o644)
    store_token("http://127.0.0.1:8000", TOKEN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_removing_forgets_one_server(config: Path) -> None:
    assert remove_token("http://127.0.0.1:8000") is False  # no file yet
    store_token("http://127.0.0.1:8000", TOKEN)
    store_token("http://127.0.0.1:9000", OTHER)
    assert remove_token("http://127.0.0.1:8000/") is True
    assert remove_token("http://127.0.0.1:8000") is False
    assert json.loads(credentials_path().read_text()) == {"http://127.0.0.1:9000": OTHER}


def test_a_token_is_one_word(config: Path) -> None:
    for bad in ("", "tl_a b", "tl_a\n"):
        with pytest.raises(ValueError, match="one word"):
            store_token("http://127.0.0.1:8000", bad)
    assert not credentials_path().exists()


def test_a_broken_file_is_not_overwritten_and_clients_send_no_token(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not JSON") as broken:
        store_token("http://127.0.0.1:8000", TOKEN)
    assert broken.value.path == path and isinstance(broken.value, TasklineClientError)
    assert path.read_text() == "{not json"
    with caplog.at_level(logging.WARNING, logger="taskline.sdk"):
        assert resolve_token("http://127.0.0.1:8000") is None
    assert "credentials file" in caplog.text and "sending no token" in caplog.text
    path.write_text('["a list"]')
    with pytest.raises(CredentialsError, match="JSON object"):
        stored_token("http://127.0.0.1:8000")


def test_precedence_argument_then_environment_then_file(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:8000"
    assert resolve_token(url) is None
    store_token(url, "tl_from_file")
    assert resolve_token(url) == "tl_from_file"
    assert resolve_token("http://127.0.0.1:8001") is None  # another server
    monkeypatch.setenv("TASKLINE_TOKEN", "  ")
    assert resolve_token(url) == "tl_from_file"  # blank: unset
    monkeypatch.setenv("TASKLINE_TOKEN", "tl_from_env")
    assert resolve_token(url) == "tl_from_env"
    assert resolve_token(url, "tl_given") == "tl_given"
    assert resolve_token(url, "") is None  # "": none, without looking


# --- every request carries it ------------------------------------------------------------


class Recorder:
    """An httpx transport answering like a server that checks tokens; records what it got."""

    def __init__(self, accepted: str | None = TOKEN) -> None:
        self.accepted = accepted
        self.seen: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = request.headers.get("authorization")
        self.seen.append(sent)
        if self.accepted is not None and sent != f"Bearer {self.accepted}":
            problem = dict(UNAUTHENTICATED)
            if sent is not None:
                problem["detail"] = "the token is unknown, expired or revoked"
            return httpx.Response(
                401,
                json=problem,
                headers={"Content-Type": "application/problem+json", "WWW-Authenticate": "Bearer"},
            )
        if request.method == "POST":
            return httpx.Response(403, json=FORBIDDEN)
        return httpx.Response(200, json=PAGE)


def test_both_faces_send_the_token_from_each_source(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://taskline.test"
    recorder = Recorder(accepted=None)

    def sent(**options: Any) -> str | None:
        with Client(url, transport=httpx.MockTransport(recorder), **options) as client:
            client.list_tasks(limit=1)
        return recorder.seen.pop()

    async def sent_async(**options: Any) -> str | None:
        transport = httpx.MockTransport(recorder)
        async with AsyncClient(url, transport=transport, **options) as client:
            await client.list_tasks(limit=1)
        return recorder.seen.pop()

    def both(**options: Any) -> set[str | None]:
        return {sent(**options), asyncio.run(sent_async(**options))}

    assert both() == {None}
    store_token(url, "tl_file")
    assert both() == {"Bearer tl_file"}
    monkeypatch.setenv("TASKLINE_TOKEN", "tl_env")
    assert both() == {"Bearer tl_env"}
    assert both(token="tl_given") == {"Bearer tl_given"}
    assert both(token="") == {None}


def test_a_401_says_how_to_get_a_token() -> None:
    url = "http://taskline.test"
    with (
        Client(url, transport=httpx.MockTransport(Recorder())) as client,
        pytest.raises(TasklineAuthError) as missing,
    ):
        client.list_tasks()
    error = missing.value
    assert isinstance(error, ApiError) and isinstance(error, TasklineClientError)
    assert (error.status, error.token_sent) == (401, False)
    assert error.detail == UNAUTHENTICATED["detail"]
    assert error.problem["type"] == UNAUTHENTICATED["type"]
    assert str(error) == (
        f"{UNAUTHENTICATED['detail']} (401); no token was sent: set TASKLINE_TOKEN, pass "
        "token=..., or run `taskline login`"
    )
    with (
        Client(url, token=OTHER, transport=httpx.MockTransport(Recorder())) as client,
        pytest.raises(TasklineAuthError) as refused,
    ):
        client.get_task("task_x")
    assert (refused.value.status, refused.value.token_sent) == (401, True)
    assert str(refused.value).startswith("the token is unknown, expired or revoked (401); ")
    assert "run `taskline login` again" in str(refused.value)


async def test_a_403_names_what_the_role_may_not_do() -> None:
    transport = httpx.MockTransport(Recorder())
    async with AsyncClient("http://taskline.test", token=TOKEN, transport=transport) as client:
        assert (await client.list_tasks(limit=1)).total == 0
        with pytest.raises(TasklineAuthError) as forbidden:
            await client.create_task("Not mine to make")
    assert (forbidden.value.status, forbidden.value.hint) == (403, None)
    assert str(forbidden.value) == f"{FORBIDDEN['detail']} (403)"


def test_create_token_signs_in_without_a_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        if body["password"] != "s3cret":
            return httpx.Response(401, json={**UNAUTHENTICATED, "detail": "wrong password"})
        issued = {"id": "tok_1", "token": TOKEN, "name": body.get("name"), "role": "member"}
        return httpx.Response(201, json={**issued, "expires_at": None})

    with Client("http://taskline.test", token="", transport=httpx.MockTransport(handler)) as c:
        issued = c.create_token("alice", "s3cret", name="laptop")
        with pytest.raises(TasklineAuthError, match="wrong password"):
            c.create_token("alice", "guess")
    assert (issued.id, issued.token, issued.name, issued.role) == (
        "tok_1",
        TOKEN,
        "laptop",
        "member",
    )
    assert TOKEN not in repr(issued)
    assert seen[0].url.path == "/api/v1/auth/token" and "authorization" not in seen[0].headers
    assert json.loads(seen[1].content) == {"username": "alice", "password": "guess"}


# --- WebSockets: the token on the upgrade, refusals not retried ---------------------------


Handler = Callable[[ServerConnection, int], Awaitable[None]]


class Peer:
    """A WebSocket server standing in for Taskline: ``handler(connection, n)`` plays the n-th
    connection (0-based); the upgrade headers of each are kept."""

    def __init__(self, handler: Handler, *, status: int | None = None) -> None:
        self.handler = handler
        self.status = status
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []
        self.url = ""

    def _process(self, connection: ServerConnection, request: Request) -> Response | None:
        self.authorizations.append(request.headers.get("Authorization"))
        self.paths.append(request.path)
        if self.status is not None:
            return connection.respond(self.status, "refused\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        await self.handler(connection, len(self.paths) - 1)

    @property
    def connections(self) -> int:
        return len(self.paths)


@asynccontextmanager
async def peer(handler: Handler, *, status: int | None = None) -> AsyncIterator[Peer]:
    found = Peer(handler, status=status)
    async with serve(found._serve, "127.0.0.1", 0, process_request=found._process) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        found.url = f"http://127.0.0.1:{port}"
        yield found


def close_with(code: int, reason: str) -> Handler:
    async def handler(connection: ServerConnection, n: int) -> None:
        await connection.close(code, reason)

    return handler


FAST = Backoff(initial=0.01, maximum=0.02, give_up_after=5.0)


async def test_a_subscription_refused_with_4401_raises_at_once(config: Path) -> None:
    async with peer(close_with(4401, "the token is unknown, expired or revoked")) as server:
        store_token(server.url, TOKEN)
        async with AsyncClient(server.url) as client:
            subscription = client.subscribe("task_x", since=0, backoff=FAST)
            with pytest.raises(TasklineAuthError) as refused:
                async with asyncio.timeout(5):
                    await anext(subscription)
    assert server.connections == 1  # not retried
    assert server.authorizations == [f"Bearer {TOKEN}"]
    assert server.paths[0].startswith("/ws/tasks/task_x?")
    assert (refused.value.status, refused.value.token_sent) == (401, True)
    assert refused.value.detail == "task 'task_x': the token is unknown, expired or revoked"
    assert refused.value.problem["type"] == "https://taskline.dev/problems/unauthenticated"
    assert "taskline login" in str(refused.value)
    assert subscription.closed


async def test_a_subscription_refused_after_a_reconnect_raises_instead_of_looping() -> None:
    """Live first, then the server restarts (1012) and refuses the token when the
    subscription comes back (revoked meanwhile): it raises, it does not reconnect forever."""

    async def handler(connection: ServerConnection, n: int) -> None:
        if n == 0:
            hello = {
                "id": "msg_1",
                "task_id": "task_x",
                "event_type": "connection_established",
                "data": {"last_seq": 0, "epoch": "ep1"},
                "timestamp": "2026-01-01T00:00:00Z",
            }
            await connection.send(json.dumps(hello))
            await connection.close(1012, "restarting")
        else:
            await connection.close(4401, "the token was revoked")

    async with peer(handler) as server, AsyncClient(server.url, token=TOKEN) as client:
        subscription = client.subscribe("task_x", include_connection_messages=True, backoff=FAST)
        seen: list[str] = []
        with pytest.raises(TasklineAuthError, match="the token was revoked"):
            async with asyncio.timeout(5):
                async for message in subscription:
                    seen.append(message.event_type)
    assert seen == ["connection_established", "connection_closed"]
    assert server.connections == 2
    assert server.authorizations == [f"Bearer {TOKEN}"] * 2


async def test_a_subscription_refused_with_4403_is_forbidden() -> None:
    async with (
        peer(close_with(4403, "client_id client_x belongs to someone else")) as server,
        AsyncClient(server.url, token=TOKEN) as client,
    ):
        with pytest.raises(TasklineAuthError) as forbidden:
            async with asyncio.timeout(5), client.subscribe("task_x", backoff=FAST) as events:
                await anext(events)
    assert (forbidden.value.status, forbidden.value.hint) == (403, None)
    assert "belongs to someone else" in forbidden.value.detail
    assert server.connections == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_an_upgrade_answered_401_or_403_is_an_auth_error(status: int) -> None:
    async with (
        peer(close_with(1000, ""), status=status) as server,
        AsyncClient(server.url, token="") as client,
    ):
        with pytest.raises(TasklineAuthError) as refused:
            async with asyncio.timeout(5):
                await anext(client.subscribe("task_x", backoff=FAST))
    assert (refused.value.status, refused.value.token_sent) == (status, False)
    assert server.connections == 1 and server.authorizations == [None]


def test_the_sync_subscription_raises_it_too(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with peer(close_with(4401, "no token")) as server:
            await asyncio.to_thread(sync_part, server)

    def sync_part(server: Peer) -> None:
        monkeypatch.setenv("TASKLINE_TOKEN", OTHER)
        with (
            Client(server.url) as client,
            client.subscribe("task_x", backoff=FAST) as events,
            pytest.raises(TasklineAuthError, match="no token"),
        ):
            next(iter(events))
        assert server.authorizations == [f"Bearer {OTHER}"]

    asyncio.run(main())


def rest_for(agent_task: str) -> httpx.MockTransport:
    """REST answers for a run: the task exists and is pending."""

    def handler(request: httpx.Request) -> httpx.Response:
        task = {
            "id": agent_task,
            "title": "t",
            "description": "",
            "status": "pending",
            "priority": "medium",
            "progress": 0.0,
            "confidence": None,
            "assigned_agent_id": None,
            "tags": [],
            "result": None,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "started_at": None,
            "completed_at": None,
            "sections": [],
        }
        return httpx.Response(200, json=task)

    return httpx.MockTransport(handler)


async def test_an_agent_connection_refused_with_4403_raises_on_entering() -> None:
    reason = "agent:agent_mine may connect only as itself, not as agent_other"
    async with peer(close_with(4403, reason)) as server:
        options = DeliveryOptions(backoff=FAST)
        async with AsyncClient(server.url, token=TOKEN, delivery=options) as client:
            with pytest.raises(TasklineAuthError) as forbidden:
                async with asyncio.timeout(5), client.connect_agent("agent_other"):
                    pytest.fail("entered a refused connection")
            assert client._agents == {}  # released
    assert forbidden.value.status == 403 and reason in forbidden.value.detail
    assert server.connections == 1
    assert server.authorizations == [f"Bearer {TOKEN}"]
    assert server.paths[0].startswith("/ws/agents/agent_other")


async def test_a_run_whose_agent_connection_gets_4401_raises(config: Path) -> None:
    async with peer(close_with(4401, "the token expired")) as server:
        store_token(server.url, TOKEN)
        options = DeliveryOptions(backoff=FAST, flush_timeout=5)
        transport = rest_for("task_x")
        async with AsyncClient(server.url, delivery=options, transport=transport) as client:
            with pytest.raises(TasklineAuthError, match="the token expired") as refused:
                async with asyncio.timeout(5), client.run("task_x", agent="agent_x"):
                    pytest.fail("the run started without a connection")
    assert refused.value.status == 401 and refused.value.token_sent
    assert server.connections == 1


async def test_an_agent_connection_revoked_later_is_raised_when_the_block_ends() -> None:
    """Connected first; after a restart the token is refused: ``error`` shows it, no more
    reconnecting, and leaving the block raises it."""

    async def handler(connection: ServerConnection, n: int) -> None:
        if n == 0:
            await connection.send(json.dumps({"type": "welcome", "heartbeat_interval": 20}))
            await asyncio.sleep(0.2)
            await connection.close(1012, "restarting")
        else:
            await connection.close(4401, "the token was revoked")

    async with peer(handler) as server:
        options = DeliveryOptions(backoff=FAST)
        async with AsyncClient(server.url, token=TOKEN, delivery=options) as client:
            with pytest.raises(TasklineAuthError, match="revoked"):
                async with client.connect_agent("agent_x") as agent:
                    assert agent.connected and agent.error is None
                    async with asyncio.timeout(5):
                        while agent.error is None:
                            await asyncio.sleep(0.02)
                    assert isinstance(agent.error, TasklineAuthError)
                    await asyncio.sleep(0.2)
    assert server.connections == 2


async def test_an_unknown_task_is_still_not_found() -> None:
    """The close codes that meant something before keep their meaning (4404)."""
    async with (
        peer(close_with(4404, "task 'task_x' does not exist")) as server,
        AsyncClient(server.url, token="") as client,
    ):
        with pytest.raises(NotFound):
            async with asyncio.timeout(5):
                await anext(client.subscribe("task_x", backoff=FAST))


def test_tokens_stay_out_of_reprs(config: Path) -> None:
    with Client("http://taskline.test", token=TOKEN) as client:
        assert TOKEN not in repr(client)
    assert os.environ.get("TASKLINE_TOKEN") is None
