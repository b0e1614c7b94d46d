"""Server-side plumbing for ``serve`` and ``db``: settings from flags, the database handle.

Only these two commands import the server's packages, and only when they run.
"""

from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from taskline.cli.errors import CliError, ExitCode
from taskline.settings import Settings

if TYPE_CHECKING:
    from taskline.store.database import Database

__all__ = ["check_database", "load_settings", "open_database", "safe_database_url"]

_URL_HINT = "'--database-url' (or TASKLINE_DATABASE_URL)"


def load_settings(**flags: Any) -> Settings:
    """Return ``Settings`` where every flag that was given (not ``None``) beats the environment.

    Raises:
        CliError: a ``TASKLINE_*`` variable (or a flag) holds a value Settings refuses (exit 2).
    """
    overrides = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        raise CliError(
            f"invalid setting {field}: {first.get('msg', 'invalid value')} "
            f"(check TASKLINE_{field.upper()} or the matching option)",
            ExitCode.USAGE,
        ) from None


def safe_database_url(url: str) -> str:
    """``url`` with any password masked, fit to print; unparsable URLs come back unchanged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_database(url: str) -> "Database":
    """Return a :class:`Database` for ``url`` (nothing is connected yet).

    Raises:
        click.BadParameter: the URL does not parse, or names a dialect or driver that is not
            installed or not async (``sqlite://`` instead of ``sqlite+aiosqlite://``).
    """
    from sqlalchemy.exc import ArgumentError, InvalidRequestError

    from taskline.store.database import Database

    try:
        return Database(url)
    except (ArgumentError, InvalidRequestError, ImportError) as exc:
        raise click.BadParameter(
            f"cannot use {safe_database_url(url)!r}: {exc}", param_hint=_URL_HINT
        ) from None


async def check_database(url: str) -> None:
    """Connect once to ``url``, so a server does not start on a database it cannot open.

    Raises:
        click.BadParameter: see :func:`open_database`.
        CliError: the database does not answer (exit 1).
    """
    from taskline.domain.errors import TasklineError

    database = open_database(url)
    try:
        await database.ping()
    except TasklineError as exc:
        raise CliError(f"cannot open {safe_database_url(url)}: {exc.detail}") from None
    finally:
        await database.dispose()
