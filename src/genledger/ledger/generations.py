"""The generations store: records committed through the group-commit writer, read by owner."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.generation import Generation, ProviderAttempt
from genledger.ledger.schema import generations
from genledger.ledger.writer import BatchWriter, Sink


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; everything in the ledger is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A generation to record, and the credit its request reserved (released as it is charged)."""

    generation: Generation
    reserved: int = 0


def generation_row(generation: Generation) -> dict[str, Any]:
    return {
        "id": generation.id,
        "key_id": generation.key_id,
        "created_at": generation.created_at,
        "model": generation.model,
        "api_type": generation.api_type,
        "upstream_id": generation.upstream_id,
        "provider_name": generation.provider_name,
        "total_cost_pico": generation.total_cost,
        "cache_discount_pico": generation.cache_discount,
        "usage_pico": generation.usage,
        "streamed": generation.streamed,
        "cancelled": generation.cancelled,
        "latency_ms": generation.latency_ms,
        "generation_time_ms": generation.generation_time_ms,
        "finish_reason": generation.finish_reason,
        "native_finish_reason": generation.native_finish_reason,
        "tokens_prompt": generation.tokens_prompt,
        "tokens_completion": generation.tokens_completion,
        "native_tokens_prompt": generation.native_tokens_prompt,
        "native_tokens_completion": generation.native_tokens_completion,
        "native_tokens_reasoning": generation.native_tokens_reasoning,
        "native_tokens_cached": generation.native_tokens_cached,
        "native_tokens_cache_write": generation.native_tokens_cache_write,
        "native_tokens_completion_images": generation.native_tokens_completion_images,
        "num_media_prompt": generation.num_media_prompt,
        "origin": generation.origin,
        "http_referer": generation.http_referer,
        "user_agent": generation.user_agent,
        "external_user": generation.external_user,
        "app_title": generation.app_title,
        "router": generation.router,
        "data_region": generation.data_region,
        "request_id": generation.request_id,
        "provider_responses": [attempt.to_json() for attempt in generation.provider_responses],
    }


def _generation(row: RowMapping) -> Generation:
    attempts = tuple(
        ProviderAttempt(
            status=item["status"],
            provider_name=item.get("provider_name"),
            latency_ms=item.get("latency"),
            upstream_id=item.get("id"),
        )
        for item in row["provider_responses"] or ()
    )
    return Generation(
        id=row["id"],
        key_id=row["key_id"],
        created_at=_utc(row["created_at"]),
        model=row["model"],
        api_type=row["api_type"],
        upstream_id=row["upstream_id"],
        provider_name=row["provider_name"],
        total_cost=row["total_cost_pico"],
        cache_discount=row["cache_discount_pico"],
        usage=row["usage_pico"],
        streamed=row["streamed"],
        cancelled=row["cancelled"],
        latency_ms=row["latency_ms"],
        generation_time_ms=row["generation_time_ms"],
        finish_reason=row["finish_reason"],
        native_finish_reason=row["native_finish_reason"],
        tokens_prompt=row["tokens_prompt"],
        tokens_completion=row["tokens_completion"],
        native_tokens_prompt=row["native_tokens_prompt"],
        native_tokens_completion=row["native_tokens_completion"],
        native_tokens_reasoning=row["native_tokens_reasoning"],
        native_tokens_cached=row["native_tokens_cached"],
        native_tokens_cache_write=row["native_tokens_cache_write"],
        native_tokens_completion_images=row["native_tokens_completion_images"],
        num_media_prompt=row["num_media_prompt"],
        origin=row["origin"],
        http_referer=row["http_referer"],
        user_agent=row["user_agent"],
        external_user=row["external_user"],
        app_title=row["app_title"],
        router=row["router"],
        data_region=row["data_region"],
        request_id=row["request_id"],
        provider_responses=attempts,
    )


def charges(batch: Sequence[Settlement]) -> list[tuple[str, int, int]]:
    """(key id, amount to charge, reservation to release) per key of a batch, by key id.

    Written in the same transaction as the batch's generations, so a key's usage always
    equals the sum of its generations' usage. The fixed order keeps concurrent batches
    from deadlocking.
    """
    charged: dict[str, int] = defaultdict(int)
    released: dict[str, int] = defaultdict(int)
    for settlement in batch:
        charged[settlement.generation.key_id] += settlement.generation.usage
        released[settlement.generation.key_id] += settlement.reserved
    return [(key_id, charged[key_id], released[key_id]) for key_id in sorted(charged)]


class GenerationStore:
    def __init__(self, engine: AsyncEngine, sink: Sink[Settlement]) -> None:
        self._engine = engine
        self._writer: BatchWriter[Settlement] = BatchWriter(sink)

    def start(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        await self._writer.close()

    async def record(self, generation: Generation, *, reserved: int = 0) -> None:
        """Commit ``generation``, charge its usage to its key and release ``reserved``.

        Returns once durable. Charging and releasing happen in the same transaction as
        the insert, so a key's usage always equals the sum of its generations' usage.
        """
        await self._writer.write(Settlement(generation, reserved))

    async def get(self, generation_id: str, key_id: str) -> Generation | None:
        """The generation, if it exists and belongs to ``key_id``."""
        query = select(generations).where(generations.c.id == generation_id, generations.c.key_id == key_id)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        return _generation(row) if row is not None else None

    async def lookup(self, generation_id: str) -> Generation | None:
        """The generation whoever owns it: for operators (the CLI), never for API callers."""
        async with self._engine.connect() as connection:
            row = (
                (await connection.execute(select(generations).where(generations.c.id == generation_id)))
                .mappings()
                .first()
            )
        return _generation(row) if row is not None else None

    async def usage_since(self, key_id: str, since: datetime) -> int:
        """Picodollars charged to ``key_id`` by generations created at or after ``since``."""
        query = select(func.coalesce(func.sum(generations.c.usage_pico), 0)).where(
            generations.c.key_id == key_id, generations.c.created_at >= since
        )
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def usage_by_day(self, key_id: str, since: datetime) -> list[tuple[str, int, int]]:
        """(UTC day, generations, picodollars) for each day with usage since ``since``."""
        query = select(generations.c.created_at, generations.c.usage_pico).where(
            generations.c.key_id == key_id, generations.c.created_at >= since
        )
        days: dict[str, list[int]] = {}
        async with self._engine.connect() as connection:
            for created_at, usage in await connection.execute(query):
                day = days.setdefault(_utc(created_at).date().isoformat(), [0, 0])
                day[0] += 1
                day[1] += usage
        return [(day, count, usage) for day, (count, usage) in sorted(days.items())]

    async def total_usage(self, key_id: str) -> int:
        query = select(func.coalesce(func.sum(generations.c.usage_pico), 0)).where(
            generations.c.key_id == key_id
        )
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())
