"""Where the ledger's group commits run: one tuned path per database.

Measured (bench/gateway_overhead.py): building SQLAlchemy statements and running them
through its async drivers cost more per record than the rest of a request. So the hot
write runs two fixed statements on the plain driver: the standard library's sqlite3 in a
thread of its own, or one asyncpg connection kept by the writer. The tables stay
SQLAlchemy's (``schema.py``, migrated by Alembic), and values are converted by
SQLAlchemy's own type processors for the dialect, so what is written reads back through
SQLAlchemy exactly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as pysqlite_dialect
from sqlalchemy.engine import Dialect, make_url

from genledger.ledger.generations import Settlement, charges, generation_row
from genledger.ledger.schema import generations

_CHARGE_SET = (
    "usage_pico = usage_pico + {amount}, period_usage_pico = period_usage_pico + {amount}, "
    "reserved_pico = reserved_pico - {reserved}"
)


class RowEncoder:
    """A table's rows as DB-API tuples, each value converted as SQLAlchemy would for ``dialect``."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.columns = [column.name for column in table.columns]
        self._processors = [
            column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns
        ]

    def encode(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip((row[name] for name in self.columns), self._processors, strict=True)
        )


class SQLiteSink:
    """Group commits on a sqlite3 connection in a thread of its own: one hop per batch."""

    def __init__(self, database_url: str) -> None:
        self._path = make_url(database_url).database or ":memory:"
        self._encoder = RowEncoder(generations, pysqlite_dialect())
        columns = self._encoder.columns
        self._insert = (
            f"INSERT INTO generations ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        )
        self._charge = f"UPDATE api_keys SET {_CHARGE_SET.format(amount='?1', reserved='?2')} WHERE id = ?3"
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="genledger-ledger")
        self._connection: sqlite3.Connection | None = None  # used in the writer thread only

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        # As the engine's connections (engine.py): WAL, a sync at checkpoints, patience.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=10000")
        return connection

    def _commit(self, batch: Sequence[Settlement]) -> None:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        rows = [self._encoder.encode(generation_row(s.generation)) for s in batch]
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(self._insert, rows)
            connection.executemany(
                self._charge, [(amount, reserved, key_id) for key_id, amount, reserved in charges(batch)]
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def commit(self, batch: Sequence[Settlement]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._commit, batch)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)


class PostgresSink:
    """Group commits on one asyncpg connection the writer keeps (reopened after a failure).

    A single record, the common case when not under load, is one statement and one round
    trip: the insert and its key's charge in one ``WITH``. A batch is one transaction.
    """

    def __init__(self, database_url: str) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._encoder = RowEncoder(generations, asyncpg_dialect())  # type: ignore[no-untyped-call]
        columns = self._encoder.columns
        count = len(columns)
        values = ", ".join(f"${i}" for i in range(1, count + 1))
        self._insert = f"INSERT INTO generations ({', '.join(columns)}) VALUES ({values})"
        charge = _CHARGE_SET.format(amount=f"${count + 1}", reserved=f"${count + 2}")
        self._insert_and_charge = (
            f"WITH recorded AS ({self._insert}) UPDATE api_keys SET {charge} WHERE id = ${count + 3}"
        )
        self._charge = f"UPDATE api_keys SET {_CHARGE_SET.format(amount='$1', reserved='$2')} WHERE id = $3"
        self._connection: asyncpg.Connection | None = None

    async def commit(self, batch: Sequence[Settlement]) -> None:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn)
        connection = self._connection
        rows = [self._encoder.encode(generation_row(s.generation)) for s in batch]
        due = charges(batch)
        try:
            if len(rows) == 1 and len(due) == 1:
                key_id, amount, reserved = due[0]
                await connection.execute(self._insert_and_charge, *rows[0], amount, reserved, key_id)
                return
            async with connection.transaction():
                await connection.executemany(self._insert, rows)
                if due:
                    await connection.executemany(
                        self._charge, [(amount, reserved, key_id) for key_id, amount, reserved in due]
                    )
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.InterfaceError):
            self._connection = None
            connection.terminate()
            raise

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
