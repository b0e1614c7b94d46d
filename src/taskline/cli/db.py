"""``taskline db ...``: database maintenance that runs without a server."""

import asyncio
from typing import TYPE_CHECKING

import click

from taskline.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from taskline.store.database import Database

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database maintenance (runs locally, not through the server)."""


@db.command()
@click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy async URL.  [default: TASKLINE_DATABASE_URL, else ./taskline.db]",
)
def upgrade(database_url: str | None) -> None:
    """Apply pending migrations; a database that is up to date is left alone.

    A new SQLite file (and its directory) is created if needed.
    """
    from taskline.cli.config import load_settings, safe_database_url

    url = database_url or load_settings().database_url
    before, after = asyncio.run(_upgrade(url))
    shown = safe_database_url(url)
    if before == after:
        click.echo(f"{shown} is up to date (schema revision {after})")
    else:
        click.echo(f"upgraded {shown} from {before or 'an empty database'} to revision {after}")


async def _upgrade(url: str) -> tuple[str | None, str | None]:
    """Migrate ``url`` to the latest revision; return the revisions before and after."""
    from taskline.cli.config import open_database
    from taskline.domain.errors import TasklineError

    database = open_database(url)
    try:
        before = await _revision(database)
        await database.migrate()
        return before, await _revision(database)
    except TasklineError as exc:
        raise CliError(exc.detail, ExitCode.ERROR) from None
    finally:
        await database.dispose()


async def _revision(database: "Database") -> str | None:
    """The schema revision recorded by Alembic, or ``None`` for a database never migrated."""
    from sqlalchemy import inspect, text

    async with database.read() as session:
        connection = await session.connection()
        has_table = await connection.run_sync(
            lambda sync: inspect(sync).has_table("alembic_version")
        )
        if not has_table:
            return None
        revision = await session.scalar(text("SELECT version_num FROM alembic_version"))
        return str(revision) if revision is not None else None
