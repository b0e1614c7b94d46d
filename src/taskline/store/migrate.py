"""Run Alembic migrations on a live synchronous connection (called through ``run_sync``)."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from taskline.store.tables import Base

__all__ = ["alembic_config", "schema_differences", "upgrade"]


def alembic_config(connection: Connection | None = None) -> Config:
    """Return an Alembic config that finds the migrations inside the installed package."""
    config = Config()
    config.set_main_option("script_location", "taskline.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the schema on ``connection`` to ``revision``."""
    command.upgrade(alembic_config(connection), revision)


def schema_differences(connection: Connection) -> list[object]:
    """Compare the migrated schema with the table models; an empty list means they match."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))
