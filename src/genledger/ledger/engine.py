"""Database engines: one URL picks SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).parent / "migrations"
_WAL_ATTEMPTS = 250  # 5 s of 20 ms waits
_PG_MIGRATION_LOCK = 0x67656E6C  # an advisory lock id, so instances starting together migrate once
HEAD_REVISION = "0010"
"""The last migration's revision (a test holds it to Alembic's head). A ledger already there
is opened without importing Alembic, which costs a serving process 11 MiB of memory."""


class DatabaseURLError(ValueError):
    """A database URL genledger cannot use."""


class MigrationError(RuntimeError):
    """The database's tables could not be migrated to the ledger's; none were changed."""


def async_url(url: str) -> URL:
    """The async driver's URL for a plain ``sqlite:///`` or ``postgresql://`` URL."""
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseURLError(f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise DatabaseURLError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://...")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; NORMAL syncs at checkpoints, so a commit
    # survives a crash of the gateway (not of the machine) without an fsync per request.
    cursor.execute("PRAGMA busy_timeout=10000")
    # Switching a new file to WAL takes an exclusive lock, and SQLite may refuse it at once,
    # without its busy handler, while another instance is switching or migrating the same new
    # file (seen: instances starting together, about one time in five): try again briefly.
    # Once the file is in WAL mode the pragma needs no lock; this runs as a connection opens.
    for attempt in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` with the per-backend settings genledger relies on."""
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(target, pool_size=8, max_overflow=8)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs a round trip per checkout; a dead connection is invalidated
    # when a statement fails on it.
    return create_async_engine(target, pool_size=10, max_overflow=20)


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # The sqlite3 module begins a transaction only before INSERT, UPDATE and DELETE, so
        # each CREATE TABLE would commit on its own: a failed migration would leave half a
        # schema that the next attempt trips over. One transaction makes it all or nothing,
        # and taking the write lock first (as the advisory lock below) makes instances
        # starting together migrate one after the other.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
    if _revision(connection) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        raise MigrationError(f"cannot migrate the ledger's tables: {_reason(exc)}") from exc


def _revision(connection: Connection) -> str | None:
    """The ledger's migration revision, read without Alembic; None for a database without one."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(revision) if revision is not None else None


def _reason(exc: Exception) -> str:
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        # The driver's own error (asyncpg's sits under SQLAlchemy's adapter), without the SQL.
        cause = exc.orig.__cause__ or exc.orig
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration, all or nothing.

    Raises :class:`MigrationError` when one fails (say, a table of that name is in the way,
    or the database is at a revision this version does not know).
    """
    async with engine.begin() as connection:
        try:
            await connection.run_sync(_upgrade)
        except DBAPIError as exc:
            raise MigrationError(f"cannot migrate the ledger's tables: {_reason(exc)}") from exc
