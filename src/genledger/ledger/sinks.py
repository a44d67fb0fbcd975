"""Where the ledger's group commits run: one tuned path per database.

Measured (bench/gateway_overhead.py): building SQLAlchemy statements and running them
through its async drivers cost more per record than the rest of a request. So the hot
write runs two fixed statements on the plain driver: the standard library's sqlite3 (on the
event loop when the lock is free, else in a thread), or one asyncpg connection kept by the
writer. The tables stay
SQLAlchemy's (``schema.py``, migrated by Alembic), and values are converted by
SQLAlchemy's own type processors for the dialect, so what is written reads back through
SQLAlchemy exactly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import asyncpg
import orjson
from sqlalchemy import JSON, String, Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as pysqlite_dialect
from sqlalchemy.engine import Dialect, make_url

from genledger.ledger.generations import (
    Settlement,
    charges,
    generation_values,
    metadata_rows,
    settled_reservations,
)
from genledger.ledger.schema import generation_metadata, generations

_CHARGE_SET = "usage_pico = usage_pico + {amount}, period_usage_pico = period_usage_pico + {amount}"


def _insert(table: Table, placeholders: list[str]) -> str:
    columns = ", ".join(column.name for column in table.columns)
    return f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join(placeholders)})"


NUL_STAND_IN = "\ufffd"
"""What a NUL character in a recorded string becomes: PostgreSQL's text and JSON cannot hold
U+0000, and a record that failed for it would be lost (the rest of its group commit is not:
the writer retries the batch's records one by one).
Callers' NULs are refused at the door (``api/nul_guard.py``); an upstream's (in its ids or
finish reasons) are replaced, on both databases alike."""


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_STAND_IN) if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


class RowEncoder:
    """A table's rows as DB-API parameter lists, each value converted as SQLAlchemy would for ``dialect``,
    with any NUL character in a string or JSON document replaced (``NUL_STAND_IN``).

    JSON documents are serialized by orjson, not by the standard library's ``json.dumps``
    that SQLAlchemy's processor calls (a tenth of the encoding's cost, per record): the same
    document, read back through SQLAlchemy alike. One orjson cannot write (an integer beyond
    64 bits) goes through SQLAlchemy's own processor.
    """

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.columns = [column.name for column in table.columns]
        self._values = itemgetter(*self.columns)
        self._texts = [i for i, column in enumerate(table.columns) if isinstance(column.type, String)]
        # Only a few types convert (times, JSON, ...): their positions, found once.
        processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns]
        self._converted = [
            (i, _document(process) if isinstance(column.type, JSON) else process)
            for i, (column, process) in enumerate(zip(table.columns, processors, strict=True))
            if process is not None
        ]

    def encode(self, row: dict[str, Any]) -> list[Any]:
        return self.encode_values(list(self._values(row)))

    def encode_values(self, values: list[Any]) -> list[Any]:
        """A row given as its values in the table's column order, encoded in place."""
        for i in self._texts:
            text = values[i]
            if text and "\x00" in text:
                values[i] = text.replace("\x00", NUL_STAND_IN)
        for i, process in self._converted:
            value = values[i]
            if value is not None:
                values[i] = process(value)
        return values


_ESCAPED_NUL = "\\u0000"  # how JSON writes a NUL character in a string


def _document(sqlalchemy_process: Callable[[Any], Any]) -> Callable[[Any], str]:
    def process(value: Any) -> str:
        try:
            text = orjson.dumps(value).decode()
        except orjson.JSONEncodeError:
            return str(sqlalchemy_process(_without_nul(value)))
        if _ESCAPED_NUL in text:  # (or a backslash before "u0000": rare, and cleaned alike)
            text = orjson.dumps(_without_nul(value)).decode()
        return text

    return process


class Encoded:
    """A batch's rows, encoded for a driver: its generations and their metadata pairs."""

    def __init__(self, generations_: RowEncoder, pairs: RowEncoder, batch: Sequence[Settlement]) -> None:
        self.generations = [generations_.encode_values(generation_values(s.generation)) for s in batch]
        # Only generations with metadata have pairs: the common record writes none.
        self.pairs = [pairs.encode(row) for s in batch for row in metadata_rows(s.generation)]


class SQLiteSink:
    """Group commits on the event loop when the database is free, else in a thread.

    A commit in WAL mode with ``synchronous=NORMAL`` is a few tens of microseconds of CPU and
    no fsync, cheaper than a hop to a thread and back (measured: the hop was the largest
    part of what a record added to a request). So a batch is first tried on the loop with
    no wait for the write lock. When another connection holds the lock (a reservation, the
    CLI, another process), the batch goes to the writer thread, which waits for it: the loop
    never blocks on a lock. Checkpoints, which do fsync, never run on the loop: its
    connection has automatic checkpoints off, and the thread runs one every
    ``CHECKPOINT_EVERY`` commits.
    """

    CHECKPOINT_EVERY = 500

    def __init__(self, database_url: str) -> None:
        self._path = make_url(database_url).database or ":memory:"
        self._encoder = RowEncoder(generations, pysqlite_dialect())
        self._pair_encoder = RowEncoder(generation_metadata, pysqlite_dialect())
        self._insert = _insert(generations, ["?"] * len(generations.columns))
        self._insert_pairs = _insert(generation_metadata, ["?"] * len(generation_metadata.columns))
        self._charge = f"UPDATE api_keys SET {_CHARGE_SET.format(amount='?1')} WHERE id = ?2"
        # Writes are serialized (BEGIN IMMEDIATE), so reading the row then deleting it is atomic.
        self._release = (
            "UPDATE api_keys SET reserved_pico = reserved_pico - "
            "(SELECT amount_pico FROM reservations WHERE id = ?1) "
            "WHERE id = (SELECT key_id FROM reservations WHERE id = ?1)"
        )
        self._drop = "DELETE FROM reservations WHERE id = ?1"
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="genledger-ledger")
        self._blocking: sqlite3.Connection | None = None  # the writer thread's
        self._inline: sqlite3.Connection | None = None  # the event loop's
        self._commits = 0
        self._checkpoint: asyncio.Future[None] | None = None

    def _connect(self, *, wait_ms: int, autocheckpoint: bool) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None)
        # As the engine's connections (engine.py): WAL, and a sync at checkpoints only.
        connection.execute(f"PRAGMA busy_timeout={wait_ms}")  # first: WAL may wait for the lock
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection

    def _write(self, connection: sqlite3.Connection, batch: Sequence[Settlement]) -> None:
        rows = Encoded(self._encoder, self._pair_encoder, batch)
        connection.execute("BEGIN IMMEDIATE")  # takes the write lock, or fails at once when busy
        try:
            connection.executemany(self._insert, rows.generations)
            if rows.pairs:
                connection.executemany(self._insert_pairs, rows.pairs)
            held = [(hold_id,) for hold_id in settled_reservations(batch)]
            if held:
                connection.executemany(self._release, held)
                connection.executemany(self._drop, held)
            connection.executemany(self._charge, [(amount, key_id) for key_id, amount in charges(batch)])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _write_waiting(self, batch: Sequence[Settlement]) -> None:
        if self._blocking is None:
            self._blocking = self._connect(wait_ms=10_000, autocheckpoint=True)
        self._write(self._blocking, batch)

    def _checkpoint_now(self) -> None:
        if self._blocking is None:
            self._blocking = self._connect(wait_ms=10_000, autocheckpoint=True)
        # RESTART holds the write lock while it copies and syncs, so that the WAL starts over
        # (a passive one never finishes while writes keep coming). Meanwhile the loop's
        # writes find the lock taken and queue here behind it: requests wait, the loop not.
        self._blocking.execute("PRAGMA wal_checkpoint(RESTART)")

    async def commit(self, batch: Sequence[Settlement]) -> None:
        loop = asyncio.get_running_loop()
        if self._inline is None:
            self._inline = self._connect(wait_ms=0, autocheckpoint=False)
        if self._checkpoint is not None and not self._checkpoint.done():
            # Let the checkpoint have the lock: queue behind it rather than starve it.
            await loop.run_in_executor(self._thread, self._write_waiting, batch)
        else:
            try:
                self._write(self._inline, batch)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                await loop.run_in_executor(self._thread, self._write_waiting, batch)
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = loop.run_in_executor(self._thread, self._checkpoint_now)

    def _close_blocking(self) -> None:
        if self._blocking is not None:
            self._blocking.close()
            self._blocking = None

    async def close(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_blocking)
        self._thread.shutdown(wait=True)


class PostgresSink:
    """Group commits on one asyncpg connection the writer keeps (reopened after a failure).

    A single record, the common case when not under load, is one statement and one round
    trip: the insert and its key's charge in one ``WITH``. A batch is one transaction.
    """

    def __init__(self, database_url: str) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._encoder = RowEncoder(generations, asyncpg_dialect())  # type: ignore[no-untyped-call]
        self._pair_encoder = RowEncoder(generation_metadata, asyncpg_dialect())  # type: ignore[no-untyped-call]
        self._pair_key = self._pair_encoder.columns.index("key")
        self._pair_value = self._pair_encoder.columns.index("value")
        count = len(generations.columns)
        self._insert = _insert(generations, [f"${i}" for i in range(1, count + 1)])
        self._insert_pairs = _insert(
            generation_metadata, [f"${i}" for i in range(1, len(generation_metadata.columns) + 1)]
        )
        charge = _CHARGE_SET.format(amount=f"${count + 1}")
        self._charge = f"UPDATE api_keys SET {_CHARGE_SET.format(amount='$1')} WHERE id = $2"
        self._release = (
            "WITH released AS (DELETE FROM reservations WHERE id = $1 RETURNING key_id, amount_pico) "
            "UPDATE api_keys SET reserved_pico = reserved_pico - released.amount_pico "
            "FROM released WHERE api_keys.id = released.key_id"
        )
        # One statement per single record, whether it gives back a reservation and whether it has
        # metadata pairs (two arrays unnested beside its generation's id, key and time).
        self._single = {
            (release, pairs): self._single_statement(count, charge, release=release, pairs=pairs)
            for release in (False, True)
            for pairs in (False, True)
        }
        self._connection: asyncpg.Connection | None = None

    def _single_statement(self, count: int, charge: str, *, release: bool, pairs: bool) -> str:
        """Insert one record and charge its key (``$count+1`` the amount, ``+2`` the key id), giving
        back its reservation (``+3`` its id) and inserting its metadata pairs (two arrays).

        DELETE ... RETURNING gives a reservation back only if this statement removed its row
        (not another instance's sweep of an expired lease).
        """
        ctes = [f"recorded AS ({self._insert})"]
        update = f"UPDATE api_keys SET {charge}"
        next_parameter = count + 3
        if release:
            ctes.append(
                f"released AS (DELETE FROM reservations WHERE id = ${next_parameter} RETURNING amount_pico)"
            )
            update += ", reserved_pico = reserved_pico - COALESCE((SELECT SUM(amount_pico) FROM released), 0)"
            next_parameter += 1
        if pairs:
            at = {column.name: f"${i}" for i, column in enumerate(generations.columns, start=1)}
            ctes.append(
                "paired AS (INSERT INTO generation_metadata (key, value, created_at, generation_id, key_id) "
                f"SELECT pair.key, pair.value, {at['created_at']}, {at['id']}, {at['key_id']} "
                f"FROM unnest(${next_parameter}::text[], ${next_parameter + 1}::text[]) AS pair(key, value))"
            )
        return f"WITH {', '.join(ctes)} {update} WHERE id = ${count + 2}"

    async def commit(self, batch: Sequence[Settlement]) -> None:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn)
        connection = self._connection
        rows = Encoded(self._encoder, self._pair_encoder, batch)
        due = charges(batch)
        try:
            if len(rows.generations) == 1:
                ((key_id, amount),) = due
                settlement = batch[0]
                metadata = settlement.generation.metadata
                arguments = [*rows.generations[0], amount, key_id]
                if settlement.reserved:
                    arguments.append(settlement.generation.id)
                if metadata:  # its pairs as encoded (a NUL replaced), as two arrays
                    arguments += [
                        [pair[self._pair_key] for pair in rows.pairs],
                        [pair[self._pair_value] for pair in rows.pairs],
                    ]
                await connection.execute(self._single[settlement.reserved, bool(metadata)], *arguments)
                return
            async with connection.transaction():
                await connection.executemany(self._insert, rows.generations)
                if rows.pairs:
                    await connection.executemany(self._insert_pairs, rows.pairs)
                held = [(hold_id,) for hold_id in settled_reservations(batch)]
                if held:
                    await connection.executemany(self._release, held)
                await connection.executemany(self._charge, [(amount, key_id) for key_id, amount in due])
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.InterfaceError):
            self._connection = None
            connection.terminate()
            raise

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
