"""The ledger: keys and generations over one database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.ledger.engine import create_engine, create_sync_engine, migrate
from genledger.ledger.generations import GenerationStore, Settlement, settlement_statements
from genledger.ledger.keys import KeyStore
from genledger.ledger.writer import AsyncConnectionSink, Sink, ThreadSink


class Ledger:
    """Keys and generations over one database. Build with :meth:`open`, end with :meth:`close`."""

    def __init__(self, engine: AsyncEngine, sink: Sink[Settlement]) -> None:
        self.engine = engine
        self.keys = KeyStore(engine)
        self.generations = GenerationStore(engine, sink)

    @classmethod
    async def open(cls, database_url: str) -> Ledger:
        """Connect, apply pending migrations and start the writer."""
        engine = create_engine(database_url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        sink: Sink[Settlement]
        if engine.dialect.name == "sqlite":
            sink = ThreadSink(create_sync_engine(database_url), settlement_statements)
        else:
            sink = AsyncConnectionSink(engine, settlement_statements)
        ledger = cls(engine, sink)
        ledger.generations.start()
        return ledger

    async def close(self) -> None:
        await self.generations.close()
        await self.engine.dispose()
