"""Several processes of one deployment starting at once on a new PostgreSQL database with
auth on: they race to create the first admin, and every one of them must start anyway."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.databases import empty_database
from tests.support.process import ServerProcess
from tests.support.waiting import TIME_SCALE

PROCESSES = 4


def test_processes_starting_together_create_one_first_admin(
    pg_database_url: str, tmp_path: Path
) -> None:
    subprocess.run(
        [sys.executable, "-m", "taskline", "db", "upgrade", "--database-url", pg_database_url],
        check=True,
        capture_output=True,
    )
    empty_database(pg_database_url)  # no people yet: each process will try to make the admin
    servers = [
        ServerProcess(
            pg_database_url,
            tmp_path / f"server{n}.log",
            TASKLINE_AUTH="true",
            TASKLINE_MIGRATE_ON_START="false",
        )
        for n in range(PROCESSES)
    ]
    try:
        with ThreadPoolExecutor(PROCESSES) as pool:
            list(pool.map(lambda server: server.start(timeout=90 * TIME_SCALE), servers))
        for server in servers:
            assert httpx.get(f"{server.url}/health").status_code == 200
            assert "Traceback" not in server.log(), server.log()
    finally:
        for server in servers:
            server.stop()
    users = _user_names(pg_database_url)
    assert users == ["admin"]


def _user_names(url: str) -> list[str]:
    import asyncio

    import asyncpg

    async def names() -> list[str]:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
        try:
            return [row["name"] for row in await connection.fetch("SELECT name FROM users")]
        finally:
            await connection.close()

    return asyncio.run(names())
