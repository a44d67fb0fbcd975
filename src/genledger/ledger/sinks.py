"""Where the ledger's group commits run: one tuned path per database (PostgreSQL's in
``postgres_sink.py``, imported only for a PostgreSQL ledger: asyncpg is 3 MiB of a worker).

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

import orjson
from sqlalchemy import JSON, String, Table
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

CHARGE_SET = "usage_pico = usage_pico + {amount}, period_usage_pico = period_usage_pico + {amount}"


def insert_statement(table: Table, placeholders: list[str]) -> str:
    """The insert of a whole row of ``table``, with the driver's ``placeholders``."""
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


def _null(value: None) -> None:
    return None


def bind_null_directly() -> None:
    """Have the standard library's sqlite3 bind ``None`` without looking for an adapter.

    sqlite3 binds ``int``, ``float``, ``str`` and ``bytearray`` as they are; any other value,
    ``None`` too, is first offered to the registered adapters and then to
    ``PrepareProtocol.__adapt__``, a lookup that fails by making and dropping an
    AttributeError: a few microseconds for each NULL in a row, and a record has several.
    An adapter registered for ``None`` ends the search at the first step and gives ``None``
    back, bound as NULL as before. The registry is the sqlite3 module's, for every
    connection in the process (SQLAlchemy's too); this adapter changes no value any of them
    binds, and registering it again changes nothing.
    """
    sqlite3.register_adapter(type(None), _null)


class SQLiteSink:
    """Group commits on the event loop when the database is free, else in a thread.

    A commit in WAL mode with ``synchronous=NORMAL`` is a few tens of microseconds of CPU and
    no fsync, cheaper than a hop to a thread and back (measured: the hop was the largest
    part of what a record added to a request). So a batch is first tried on the loop with
    no wait for the write lock. When another connection holds the lock (a reservation, the
    CLI, another process), the batch goes to the writer thread, which waits for it: the loop
    never blocks on a lock. Checkpoints, which do fsync, never run on the loop: its
    connection has automatic checkpoints off, and the thread runs one every
    ``CHECKPOINT_EVERY`` rows, holding writes back only for its short last step. Rows, not
    commits: under load a commit carries tens of rows, and a checkpoint every 500 of those
    copied a WAL large enough that the writes it held back showed in the p99.
    """

    CHECKPOINT_EVERY = 500

    @staticmethod
    def probe(database_url: str) -> None:
        """Open the database and close it again; an OSError if it cannot be opened (a folder
        that is not there, no permission), raised before aiosqlite tries.

        aiosqlite (0.22) ends a connection that failed to open by queueing its thread's
        stop without waiting for it; the thread then reports to an event loop that a short
        program (the CLI) has often closed by then, and prints "Exception in thread" at exit.
        """
        try:
            sqlite3.connect(make_url(database_url).database or ":memory:").close()
        except sqlite3.Error as exc:
            raise OSError(str(exc)) from None

    def __init__(self, database_url: str) -> None:
        bind_null_directly()
        self._path = make_url(database_url).database or ":memory:"
        self._encoder = RowEncoder(generations, pysqlite_dialect())
        self._pair_encoder = RowEncoder(generation_metadata, pysqlite_dialect())
        self._insert = insert_statement(generations, ["?"] * len(generations.columns))
        self._insert_pairs = insert_statement(generation_metadata, ["?"] * len(generation_metadata.columns))
        self._charge = f"UPDATE api_keys SET {CHARGE_SET.format(amount='?1')} WHERE id = ?2"
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
        self._rows = 0  # written since the sink opened
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpoint_began = 0  # self._rows when the last checkpoint began
        self._restarting = False  # set by the writer thread while its RESTART checkpoint runs

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
        # A RESTART checkpoint holds the write lock while it copies and syncs, so that the WAL
        # starts over (a passive one never finishes while writes keep coming); meanwhile the
        # loop's writes queue here behind it: requests wait, the loop not. A PASSIVE one first
        # copies what the WAL holds without the lock, while the loop's commits go on, so the
        # RESTART has only what they added to copy: measured on 500 records' WAL, writes were
        # held 14-28 ms by a RESTART alone, 0.05 ms after a PASSIVE.
        self._blocking.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._restarting = True
        try:
            self._blocking.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            self._restarting = False

    async def commit(self, batch: Sequence[Settlement]) -> None:
        loop = asyncio.get_running_loop()
        if self._inline is None:
            self._inline = self._connect(wait_ms=0, autocheckpoint=False)
        checkpointing = self._checkpoint is not None and not self._checkpoint.done()
        if self._restarting or (
            checkpointing and self._rows - self._checkpoint_began >= self.CHECKPOINT_EVERY
        ):
            # Let the checkpoint have the lock: queue behind it rather than starve it. And one
            # that falls behind (a slow disk) holds writes back too: the WAL holds at most
            # about twice CHECKPOINT_EVERY rows (and a batch).
            await loop.run_in_executor(self._thread, self._write_waiting, batch)
        else:
            try:
                self._write(self._inline, batch)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                await loop.run_in_executor(self._thread, self._write_waiting, batch)
        self._rows += len(batch)
        if self._rows - self._checkpoint_began >= self.CHECKPOINT_EVERY and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = loop.run_in_executor(self._thread, self._checkpoint_now)
            self._checkpoint_began = self._rows

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
