"""People and tokens for tests, made directly in a server's database (as ``taskline users``
and ``taskline tokens`` do), and a server that checks who asks with a token per role."""

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from taskline.domain.actors import Actor, Role
from taskline.service.identity import Identity
from taskline.settings import Settings
from taskline.store.database import Database
from tests.support.server import LiveServer

__all__ = ["SecureServer", "make_token", "make_user", "secure_server"]

_CLI = Actor.system("tests")


def _run(database_url: str, action: str, **kwargs: object) -> object:
    async def go() -> object:
        database = Database(database_url)
        try:
            await database.migrate()
            identity = Identity(database, session_ttl=3600)
            if action == "user":
                return await identity.create_user(
                    str(kwargs["name"]),
                    Role(str(kwargs["role"])),
                    password=kwargs.get("password"),  # type: ignore[arg-type]
                    actor=_CLI,
                )
            issued = await identity.issue_token(
                str(kwargs.get("name") or "test token"),
                Role(str(kwargs["role"])),
                agent_id=kwargs.get("agent_id"),  # type: ignore[arg-type]
                user=kwargs.get("user"),  # type: ignore[arg-type]
                actor=_CLI,
            )
            return issued.secret
        finally:
            await database.dispose()

    # in a thread of its own: callers may be inside a running event loop (Playwright's)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def make_user(database_url: str, name: str, role: str, password: str | None = None) -> None:
    """Add a person (with ``password`` if given) to the database at ``database_url``."""
    _run(database_url, "user", name=name, role=role, password=password)


def make_token(
    database_url: str,
    role: str,
    *,
    agent_id: str | None = None,
    user: str | None = None,
    name: str = "test token",
) -> str:
    """Issue an API token and return its secret."""
    secret = _run(database_url, "token", role=role, agent_id=agent_id, user=user, name=name)
    assert isinstance(secret, str)
    return secret


@dataclass
class SecureServer:
    """A running server with ``auth=True`` and a token for each role (``tokens[role]``)."""

    server: LiveServer
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self, role: str | None = None) -> httpx.Client:
        """An HTTP client signed with ``role``'s token (None: anonymous)."""
        return httpx.Client(
            base_url=self.url, timeout=10, headers=self.headers(role) if role else None
        )


@contextmanager
def secure_server(database_url: str, **settings: object) -> Iterator[SecureServer]:
    """Start a server that checks who asks, with a member ``ana``, and tokens for each role
    (the agent token is ``agent_bot``'s)."""
    make_user(database_url, "ana", "member", password="correct horse battery")
    tokens = {
        "admin": make_token(database_url, "admin", name="admin token"),
        "member": make_token(database_url, "member", user="ana", name="ana's token"),
        "agent": make_token(database_url, "agent", agent_id="agent_bot", name="bot"),
        "viewer": make_token(database_url, "viewer", name="viewer token"),
    }
    server = LiveServer(Settings(database_url=database_url, auth=True, **settings))  # type: ignore[arg-type]
    server.start()
    try:
        yield SecureServer(server, database_url, tokens)
    finally:
        server.stop()
