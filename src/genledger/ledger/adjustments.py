"""Adjustment entries in SQL: written once with their charge to the key, never changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.adjustments import Adjustment
from genledger.ledger.hints import one_of
from genledger.ledger.schema import adjustments, api_keys
from genledger.ledger.timestamps import utc

_ATTEMPTS = 3  # a concurrent writer of the same entries makes the insert fail; the retry skips them


def adjustment_from_row(row: RowMapping) -> Adjustment:
    return Adjustment(
        generation_id=row["generation_id"],
        key_id=row["key_id"],
        model=row["model"],
        generation_created_at=utc(row["generation_created_at"]),
        amount_pico=row["amount_pico"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        reason=row["reason"],
        created_at=utc(row["created_at"]),
    )


def _row(adjustment: Adjustment) -> dict[str, Any]:
    return {
        "id": adjustment.id,
        "generation_id": adjustment.generation_id,
        "key_id": adjustment.key_id,
        "model": adjustment.model,
        "generation_created_at": adjustment.generation_created_at,
        "amount_pico": adjustment.amount_pico,
        "from_version": adjustment.from_version,
        "to_version": adjustment.to_version,
        "reason": adjustment.reason,
        "created_at": adjustment.created_at,
    }


def _charge(adjustment: Adjustment) -> Any:
    # The key's usage moves with the entry; its limit period's usage too when the generation
    # adjusted was charged in the current period.
    in_period = and_(
        api_keys.c.period_start.is_not(None), api_keys.c.period_start <= adjustment.generation_created_at
    )
    return (
        update(api_keys)
        .where(api_keys.c.id == adjustment.key_id)
        .values(
            usage_pico=api_keys.c.usage_pico + adjustment.amount_pico,
            period_usage_pico=api_keys.c.period_usage_pico
            + case((in_period, adjustment.amount_pico), else_=0),
        )
    )


async def write(engine: AsyncEngine, entries: Sequence[Adjustment]) -> list[Adjustment]:
    """Write the entries not written yet and charge them, in one transaction."""
    for attempt in range(_ATTEMPTS):
        try:
            async with engine.begin() as connection:
                ids = [a.id for a in entries]
                existing = set(
                    (
                        await connection.execute(select(adjustments.c.id).where(adjustments.c.id.in_(ids)))
                    ).scalars()
                )
                new = [a for a in entries if a.id not in existing]
                if new:
                    await connection.execute(insert(adjustments), [_row(a) for a in new])
                    for adjustment in sorted(new, key=lambda a: a.key_id):  # a fixed order: no deadlocks
                        await connection.execute(_charge(adjustment))
                return new
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def of(engine: AsyncEngine, generation_ids: Sequence[str]) -> dict[str, tuple[Adjustment, ...]]:
    found: dict[str, list[Adjustment]] = {}
    query = (
        select(adjustments)
        .where(one_of(adjustments.c.generation_id, generation_ids, engine.dialect.name))
        .order_by(adjustments.c.created_at, adjustments.c.id)
    )
    async with engine.connect() as connection:
        for row in (await connection.execute(query)).mappings():
            found.setdefault(row["generation_id"], []).append(adjustment_from_row(row))
    return {generation_id: tuple(items) for generation_id, items in found.items()}


async def written(engine: AsyncEngine, start: datetime, end: datetime) -> list[Adjustment]:
    query = (
        select(adjustments)
        .where(adjustments.c.created_at >= start, adjustments.c.created_at < end)
        .order_by(adjustments.c.id)
    )
    async with engine.connect() as connection:
        return [adjustment_from_row(row) for row in (await connection.execute(query)).mappings()]
