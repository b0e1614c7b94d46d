"""Test databases: a fresh SQLite file per test, or a PostgreSQL database emptied per test."""

import asyncio
import os
import uuid

import pytest

__all__ = [
    "PG_ADMIN_URL",
    "create_pg_database",
    "drop_pg_database",
    "empty_database",
    "services_required",
    "unavailable",
]

PG_HOST = os.environ.get("TASKLINE_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql://{PG_HOST}:5432/test"


def services_required() -> bool:
    """CI sets TASKLINE_REQUIRE_SERVICES=1: a missing service then fails instead of skipping."""
    return os.environ.get("TASKLINE_REQUIRE_SERVICES") == "1"


def unavailable(service: str, reason: str) -> None:
    """Fail (in CI) or skip (on a user's machine) because ``service`` cannot be reached."""
    message = f"{service} is not available: {reason}"
    if services_required():
        pytest.fail(message + " (TASKLINE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database() -> str:
    """Create an empty database and return its SQLAlchemy URL (or skip/fail if PG is down)."""
    name = f"taskline_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        unavailable("PostgreSQL at " + PG_HOST + ":5432", str(exc) or type(exc).__name__)
    return f"postgresql+asyncpg://{PG_HOST}:5432/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def empty_database(url: str) -> None:
    """Delete every row of a PostgreSQL test database (the schema stays)."""
    asyncio.run(_truncate(url))
