"""The database handle: engines, transactions, migrations, and driver-error translation.

``Database.write()`` opens a read-write transaction, ``Database.read()`` a read-only one.
On SQLite, write transactions start with ``BEGIN IMMEDIATE`` and are serialised by an
in-process lock, so two writers never deadlock on a lock upgrade; readers run beside them
(WAL mode). On PostgreSQL both are ordinary transactions on one pool.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from taskline.domain.errors import ConflictError, InvalidInputError, StorageError, TasklineError
from taskline.domain.json_bounds import MAX_INT, MIN_INT

__all__ = ["Database", "translate_errors"]

_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _int_or_float(digits: str) -> int | float:
    number = int(digits)
    return number if MIN_INT <= number <= MAX_INT else float(digits)


def _read_jsonb(text: str) -> Any:
    """A ``jsonb`` value as Python: PostgreSQL writes a number as a decimal without exponent,
    so a float as large as ``1e20`` comes back as the integer ``100000000000000000000``, which
    is not storable. An integer beyond the signed 64-bit range is read as the float it was
    (one an older version stored, an integer then, reads as the nearest float too)."""
    raw = text.encode("utf-8", "surrogatepass")
    if b"0" * 19 in raw.translate(_DIGITS_TO_ZERO):  # 19 digits in a row: maybe such an integer
        return json.loads(text, parse_int=_int_or_float)
    try:
        return orjson.loads(raw)  # what json.loads gives, faster
    except orjson.JSONDecodeError:  # deeper than orjson reads, say
        return json.loads(text)


class Database:
    """Owns the engines for one database URL.

    Args:
        url: an SQLAlchemy async URL, ``sqlite+aiosqlite:///path.db`` or
            ``postgresql+asyncpg://user@host/db``.
        echo: log every SQL statement.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            self._write_engine = create_async_engine(url, echo=echo)
            self._read_engine = create_async_engine(url, echo=echo)
            _configure_sqlite(self._write_engine, begin="BEGIN IMMEDIATE")
            _configure_sqlite(self._read_engine, begin="BEGIN")
        else:
            engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, json_deserializer=_read_jsonb
            )
            self._write_engine = self._read_engine = engine
        self._write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Yield a session in a read-write transaction, committed when the block exits cleanly.

        An exception rolls back; driver errors are re-raised as :class:`StorageError`.
        """
        if self._write_lock is not None:
            async with self._write_lock, self._session(self._write_sessions) as session:
                yield session
        else:
            async with self._session(self._write_sessions) as session:
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """Yield a session for reading; whatever it changed is rolled back."""
        async with self._session(self._read_sessions, commit=False) as session:
            yield session

    @asynccontextmanager
    async def _session(
        self, factory: async_sessionmaker[AsyncSession], *, commit: bool = True
    ) -> AsyncIterator[AsyncSession]:
        with translate_errors():
            async with factory() as session:
                try:
                    yield session
                    if commit:
                        await session.commit()
                except BaseException:
                    await session.rollback()
                    raise

    async def ping(self) -> None:
        """Run ``SELECT 1``; raise :class:`StorageError` if the database does not answer."""
        with translate_errors():
            async with self._read_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` with Alembic (a no-op when already there)."""
        from taskline.store.migrate import upgrade

        with translate_errors():
            async with self._write_engine.begin() as connection:
                await connection.run_sync(upgrade, revision)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self._write_engine.dispose()
        if self._read_engine is not self._write_engine:
            await self._read_engine.dispose()


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


#: SQLSTATEs of text PostgreSQL cannot store: a NUL character in a text column (22021) or
#: in JSON (22P05, "unsupported Unicode escape sequence"). SQLite stores both.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise driver errors as ours, chained with ``from``.

    A constraint violation becomes :class:`ConflictError` (409); text the database cannot
    store (a NUL character on PostgreSQL) :class:`InvalidInputError` (422: sending it again
    cannot help, unlike a 503); any other driver or connection failure
    :class:`StorageError` (503).
    """
    try:
        yield
    except TasklineError:
        raise
    except IntegrityError as exc:
        raise ConflictError(f"the change conflicts with stored data: {_short(exc)}") from exc
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT:
            raise InvalidInputError(
                f"text the database cannot store ({_short(exc)}): no NUL characters (\\u0000)"
            ) from exc
        raise StorageError(f"database error: {_short(exc)}") from exc
    except OSError as exc:
        raise StorageError(f"database error: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    message = str(original).strip().splitlines()
    return message[0] if message else type(original).__name__
