"""Sealed statements in SQL: a closed day and its entry digests, written once."""

from __future__ import annotations

from datetime import date

from sqlalchemy import insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.statements import Statement, Total
from genledger.ledger.schema import statement_entries, statements
from genledger.ledger.timestamps import utc


def _statement(row: RowMapping, entries: dict[str, str]) -> Statement:
    return Statement(
        day=date.fromisoformat(row["day"]),
        closed_at=utc(row["closed_at"]),
        record_count=row["record_count"],
        totals=tuple(Total(**total) for total in row["totals"]),
        hash=row["hash"],
        previous_hash=row["previous_hash"],
        entries=entries,
    )


class SqlStatementStore:
    """:class:`~genledger.core.stores.StatementStore` over the ledger's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def seal(self, statement: Statement) -> bool:
        day = statement.day.isoformat()
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    insert(statements).values(
                        day=day,
                        closed_at=statement.closed_at,
                        record_count=statement.record_count,
                        totals=[
                            {
                                "key_id": t.key_id,
                                "model": t.model,
                                "requests": t.requests,
                                "usage_pico": t.usage_pico,
                            }
                            for t in statement.totals
                        ],
                        hash=statement.hash,
                        previous_hash=statement.previous_hash,
                    )
                )
                if statement.entries:
                    await connection.execute(
                        insert(statement_entries),
                        [{"day": day, "entry_id": e, "digest": d} for e, d in statement.entries.items()],
                    )
        except IntegrityError:
            return False
        return True

    async def statements(self, *, entries: bool = False) -> list[Statement]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(statements).order_by(statements.c.day))).mappings().all()
            digests: dict[str, dict[str, str]] = {}
            if entries:
                for day, entry_id, digest in await connection.execute(
                    select(statement_entries.c.day, statement_entries.c.entry_id, statement_entries.c.digest)
                ):
                    digests.setdefault(day, {})[entry_id] = digest
        return [_statement(row, digests.get(row["day"], {})) for row in rows]
