"""The ledger check every genledger figure comes with: the gateway's ``generations`` rows, counted.

A bench counts the rows while the gateway still runs (each row was committed before its
answer's last byte), and compares them with the requests it saw succeed: no figure may come
from a request that skipped the ledger. The ledger is a fresh SQLite file (opened read-only
here) or a fresh PostgreSQL database (read through asyncpg), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from harness import BenchError

POSTGRES_HOST: Final = "127.0.0.1:5432"
POSTGRES_USERS: Final = ("postgres", "root")  # the first that can log in creates the database
_COUNT: Final = (
    "SELECT COUNT(*), "
    "COALESCE(SUM(CASE WHEN streamed THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN cancelled THEN 1 ELSE 0 END), 0) FROM generations"
)


@dataclass(frozen=True)
class Database:
    """Where the gateway's ledger lives, and how to count its generations."""

    kind: str
    url: str  # as the gateway's config takes it

    async def count_generations(self) -> dict[str, int]:
        """``rows``, ``streamed_rows`` and ``cancelled_rows`` of ``generations``."""
        if self.kind == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
                total, streamed, cancelled = connection.execute(_COUNT).fetchone()
        else:
            connection = await asyncpg.connect(self.url, timeout=10)
            try:
                total, streamed, cancelled = await connection.fetchrow(_COUNT)
            finally:
                await connection.close()
        return {"rows": int(total), "streamed_rows": int(streamed), "cancelled_rows": int(cancelled)}

    async def fetch(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of a read-only ``query`` (no parameters: the benches' own constant SQL)."""
        if self.kind == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
                return [tuple(row) for row in connection.execute(query).fetchall()]
        connection = await asyncpg.connect(self.url, timeout=10)
        try:
            return [tuple(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()


async def admin_connection() -> tuple[asyncpg.Connection, str]:
    """A connection to the server's ``postgres`` database, and the user that could log in."""
    errors = []
    for user in POSTGRES_USERS:
        url = f"postgresql://{user}@{POSTGRES_HOST}/postgres"
        try:
            return await asyncpg.connect(url, timeout=5), user
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{url}: {exc}")
    raise BenchError("no PostgreSQL to create the benchmark database in: " + "; ".join(errors))


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database, dropped (even with open connections) on the way out."""
    admin, user = await admin_connection()
    name = f"genledger_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield Database("postgres", f"postgresql://{user}@{POSTGRES_HOST}/{name}")
    finally:
        admin, _ = await admin_connection()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def sqlite_database(workdir: Path) -> AsyncIterator[Database]:
    yield Database("sqlite", f"sqlite:///{workdir / 'bench.db'}")


def database(kind: str, workdir: Path) -> contextlib.AbstractAsyncContextManager[Database]:
    """A fresh ledger of ``kind`` (``sqlite`` or ``postgres``) for one run."""
    return postgres_database() if kind == "postgres" else sqlite_database(workdir)
