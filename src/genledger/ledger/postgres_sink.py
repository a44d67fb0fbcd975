"""PostgreSQL's group commits: one asyncpg connection the writer keeps (``sinks.py`` has SQLite's)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from genledger.ledger.generations import Settlement, charges, settled_reservations
from genledger.ledger.schema import generation_metadata, generations
from genledger.ledger.sinks import CHARGE_SET, Encoded, RowEncoder, insert_statement


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
        self._insert = insert_statement(generations, [f"${i}" for i in range(1, count + 1)])
        self._insert_pairs = insert_statement(
            generation_metadata, [f"${i}" for i in range(1, len(generation_metadata.columns) + 1)]
        )
        charge = CHARGE_SET.format(amount=f"${count + 1}")
        self._charge = f"UPDATE api_keys SET {CHARGE_SET.format(amount='$1')} WHERE id = $2"
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
                pairs = rows.pairs  # its metadata's, as encoded (a NUL replaced)
                arguments = [*rows.generations[0], amount, key_id]
                if settlement.reserved:
                    arguments.append(settlement.generation.id)
                if pairs:  # as two arrays
                    arguments += [
                        [pair[self._pair_key] for pair in pairs],
                        [pair[self._pair_value] for pair in pairs],
                    ]
                await connection.execute(self._single[settlement.reserved, bool(pairs)], *arguments)
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
