"""Migrations build the schema on each backend, and the schema matches the table models."""

from taskline.store.database import Database
from taskline.store.migrate import schema_differences


async def test_upgrade_on_an_empty_database_matches_the_models(database_url: str) -> None:
    """Upgrading to head works (twice: the second is a no-op) and nothing differs."""
    database = Database(database_url)
    try:
        await database.migrate()
        await database.migrate()
        async with database.read() as session:
            connection = await session.connection()
            differences = await connection.run_sync(schema_differences)
        assert differences == []
    finally:
        await database.dispose()
