"""Fixtures of the storage contract tests: the same checks on every implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from genledger.core.stores import GenerationStore, IdempotencyStore, KeyStore, PriceStore, StatementStore
from genledger.ledger import Ledger
from tests.inprocess.stores import (
    MemoryGenerationStore,
    MemoryIdempotencyStore,
    MemoryKeyStore,
    MemoryPriceStore,
    MemoryStatementStore,
)
from tests.services import postgres_database


@dataclass
class Stores:
    keys: KeyStore
    generations: GenerationStore
    prices: PriceStore
    statements: StatementStore
    idempotency: IdempotencyStore
    ledger: Ledger | None = None  # the SQL implementations' ledger, for tests that edit rows by hand


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def stores_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str | None]:
    """Where a storage contract test runs: in memory (None), on SQLite, on PostgreSQL."""
    if request.param == "memory":
        yield None
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/contract.db"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
async def stores(stores_url: str | None) -> AsyncIterator[Stores]:
    """The key and generation stores of one implementation, fresh for one test."""
    if stores_url is None:
        keys = MemoryKeyStore()
        yield Stores(
            keys,
            MemoryGenerationStore(keys),
            MemoryPriceStore(),
            MemoryStatementStore(),
            MemoryIdempotencyStore(),
        )
        return
    ledger = await Ledger.open(stores_url)
    try:
        yield Stores(
            ledger.keys, ledger.generations, ledger.prices, ledger.statements, ledger.idempotency, ledger
        )
    finally:
        await ledger.close()
