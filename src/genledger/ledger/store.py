"""The ledger: keys and generations over one database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.ledger.content import SqlContentStore, SqlFeedbackStore
from genledger.ledger.engine import create_engine, migrate
from genledger.ledger.generations import ROLLUP_GRACE, Settlement, SqlGenerationStore
from genledger.ledger.idempotency import SqlIdempotencyStore
from genledger.ledger.keys import SqlKeyStore
from genledger.ledger.prices import SqlPriceStore
from genledger.ledger.sinks import SQLiteSink
from genledger.ledger.statements import SqlStatementStore
from genledger.ledger.writer import Sink


class Ledger:
    """Keys, generations, price versions and statements over one database.

    Build with :meth:`open`, end with :meth:`close`.
    """

    def __init__(
        self, engine: AsyncEngine, sink: Sink[Settlement], *, rollup_grace: timedelta = ROLLUP_GRACE
    ) -> None:
        self.engine = engine
        self.keys = SqlKeyStore(engine)
        self.generations = SqlGenerationStore(engine, sink, rollup_grace=rollup_grace)
        self.content = SqlContentStore(engine)
        self.feedback = SqlFeedbackStore(engine)
        self.prices = SqlPriceStore(engine)
        self.statements = SqlStatementStore(engine)
        self.idempotency = SqlIdempotencyStore(engine)

    @classmethod
    async def open(cls, database_url: str, *, rollup_grace: timedelta = ROLLUP_GRACE) -> Ledger:
        """Connect, apply pending migrations and start the writer.

        ``rollup_grace``: how long after an hour's end no generation of it can still commit
        (the longest request, plus a margin); the activity rollup counts it closed after that.
        """
        engine = create_engine(database_url)
        try:
            if engine.dialect.name == "sqlite":
                SQLiteSink.probe(database_url)
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        sink: Sink[Settlement]
        if engine.dialect.name == "sqlite":
            sink = SQLiteSink(database_url)
        else:
            from genledger.ledger.postgres_sink import PostgresSink  # asyncpg only where it is used

            sink = PostgresSink(database_url)
        ledger = cls(engine, sink, rollup_grace=rollup_grace)
        ledger.generations.start()
        return ledger

    async def close(self) -> None:
        await self.generations.close()
        await self.engine.dispose()
