"""Fixtures: real servers on real databases (SQLite files and PostgreSQL).

The suite's servers run without authentication (``TASKLINE_AUTH=false``, loopback only) unless
a test asks for it: what they test is the rest of the product. Who may do what is tested with
``auth=True`` servers in ``tests/test_security_*.py``.
"""

import os

os.environ.setdefault("TASKLINE_AUTH", "false")
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskline.settings import Settings
from tests.support.databases import (
    create_pg_database,
    drop_pg_database,
    empty_database,
    unavailable,
)
from tests.support.server import LiveServer, serving


@pytest.fixture(autouse=True)
def _no_personal_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Clients in tests find no token of the person running them: no ``TASKLINE_TOKEN``, and
    an empty config folder instead of ``~/.config`` (the credentials file of ``taskline
    login``). Subprocesses inherit both."""
    monkeypatch.delenv("TASKLINE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


REDIS_URL = os.environ.get("TASKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The test Redis (fails or skips, see ``unavailable``, when it does not answer)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL}", str(exc))
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """One PostgreSQL database for the session, created empty and dropped at the end."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no rows: a new SQLite file, or the session's PostgreSQL emptied."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'taskline.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    empty_database(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database file (for tests that do not depend on the backend)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'taskline.db'}"


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """A running server on each backend (the test runs once per backend)."""
    yield from serving(Settings(database_url=database_url))


@pytest.fixture
def sqlite_server(sqlite_url: str) -> Iterator[LiveServer]:
    """A running server on a fresh SQLite database."""
    yield from serving(Settings(database_url=sqlite_url))


@pytest.fixture
def quiet_server(sqlite_url: str) -> Iterator[LiveServer]:
    """A running server on a fresh SQLite database whose background rounds (the lease and
    request sweepers, the webhook loops' looks) come at most every few minutes: for tests
    that count the statements one request runs, which a round in between would add to."""
    yield from serving(
        Settings(
            database_url=sqlite_url,
            lease_sweep_interval=3600,
            request_sweep_interval=3600,
            webhook_poll_interval=60,
        )
    )


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client for ``server``."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
