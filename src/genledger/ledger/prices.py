"""Price versions in SQL: a new version only when a model's prices change."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.prices import PriceVersion, current_version, prices_from_json, prices_to_json
from genledger.core.pricing import Price
from genledger.ledger.schema import price_versions
from genledger.ledger.timestamps import utc

_ATTEMPTS = 5  # instances starting together race for the next version number; the loser re-reads


def _version(row: RowMapping) -> PriceVersion:
    price, endpoints = prices_from_json(row["prices"])
    return PriceVersion(row["model"], row["version"], utc(row["effective_at"]), price, endpoints)


class SqlPriceStore:
    """:class:`~genledger.core.stores.PriceStore` over the ledger's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def sync(
        self, model: str, price: Price, now: datetime, endpoints: Mapping[str, Price] | None = None
    ) -> PriceVersion:
        for attempt in range(_ATTEMPTS):
            history = await self.history(model)
            version = current_version(history, model, price, now, endpoints)
            if history and version is history[-1]:
                return version
            try:
                async with self._engine.begin() as connection:
                    await connection.execute(
                        insert(price_versions).values(
                            model=model,
                            version=version.version,
                            effective_at=now,
                            prices=prices_to_json(price, version.endpoints),
                        )
                    )
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            return version
        raise AssertionError("unreachable")  # pragma: no cover

    async def history(self, model: str) -> list[PriceVersion]:
        query = (
            select(price_versions).where(price_versions.c.model == model).order_by(price_versions.c.version)
        )
        async with self._engine.connect() as connection:
            return [_version(row) for row in (await connection.execute(query)).mappings()]
