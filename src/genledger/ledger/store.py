"""The ledger's stores: keys and generations, behind narrow methods, over one engine."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import hash_key, new_api_key
from genledger.ledger.engine import create_engine, migrate
from genledger.ledger.schema import api_keys, generations
from genledger.ledger.writer import BatchWriter


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as stored: never the secret, only its hash."""

    id: str
    hash: str
    name: str
    label: str
    is_management: bool
    disabled: bool
    limit_pico: int | None
    limit_reset: str | None
    usage_pico: int
    created_at: datetime


class KeyExists(ValueError):
    """A key with that name exists already."""


def _utc(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; everything in the ledger is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _key(row: RowMapping) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        hash=row["hash"],
        name=row["name"],
        label=row["label"],
        is_management=bool(row["is_management"]),
        disabled=bool(row["disabled"]),
        limit_pico=row["limit_pico"],
        limit_reset=row["limit_reset"],
        usage_pico=row["usage_pico"],
        created_at=_utc(row["created_at"]),
    )


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self, name: str, *, limit_pico: int | None = None, management: bool = False, label: str | None = None
    ) -> tuple[KeyRecord, str]:
        """A new key and its secret; the secret is not kept and cannot be shown again."""
        secret = new_api_key()
        now = datetime.now(UTC)
        values = {
            "id": str(uuid.uuid4()),
            "hash": hash_key(secret),
            "name": name,
            "label": label or f"{secret[:12]}...{secret[-3:]}",
            "is_management": management,
            "disabled": False,
            "limit_pico": limit_pico,
            "limit_reset": None,
            "usage_pico": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(api_keys).values(values))
        except IntegrityError:
            raise KeyExists(f"a key named {name!r} exists already") from None
        return _key(values), secret  # type: ignore[arg-type]

    async def rotate(self, name: str) -> tuple[KeyRecord, str] | None:
        """Give the key ``name`` a new secret (its generations stay its own); None if absent."""
        secret = new_api_key()
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(api_keys)
                .where(api_keys.c.name == name)
                .values(
                    hash=hash_key(secret),
                    label=f"{secret[:12]}...{secret[-3:]}",
                    disabled=False,
                    updated_at=datetime.now(UTC),
                )
            )
            if result.rowcount == 0:
                return None
            row = (await connection.execute(select(api_keys).where(api_keys.c.name == name))).mappings().one()
        return _key(row), secret

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        async with self._engine.connect() as connection:
            row = (
                (await connection.execute(select(api_keys).where(api_keys.c.hash == key_hash)))
                .mappings()
                .first()
            )
        return _key(row) if row is not None else None

    async def find_by_name(self, name: str) -> KeyRecord | None:
        async with self._engine.connect() as connection:
            row = (
                (await connection.execute(select(api_keys).where(api_keys.c.name == name))).mappings().first()
            )
        return _key(row) if row is not None else None

    async def list(self) -> list[KeyRecord]:
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(api_keys).order_by(api_keys.c.created_at))).mappings()
            return [_key(row) for row in rows]

    async def set_disabled(self, name: str, disabled: bool = True) -> bool:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(api_keys)
                .where(api_keys.c.name == name)
                .values(disabled=disabled, updated_at=datetime.now(UTC))
            )
        return bool(result.rowcount)


def _generation_row(generation: Generation) -> dict[str, Any]:
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


async def _flush_generations(connection: AsyncConnection, batch: Sequence[Generation]) -> None:
    await connection.execute(insert(generations), [_generation_row(g) for g in batch])
    charged: dict[str, int] = defaultdict(int)
    for generation in batch:
        if generation.usage:
            charged[generation.key_id] += generation.usage
    for key_id, amount in charged.items():
        await connection.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(usage_pico=api_keys.c.usage_pico + amount)
        )


class GenerationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer: BatchWriter[Generation] = BatchWriter(engine, _flush_generations)

    async def record(self, generation: Generation) -> None:
        """Commit ``generation`` and charge its usage to its key; return once durable."""
        await self._writer.write(generation)

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


class Ledger:
    """Keys and generations over one database. Build with :meth:`open`, end with :meth:`close`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.keys = KeyStore(engine)
        self.generations = GenerationStore(engine)

    @classmethod
    async def open(cls, database_url: str) -> Ledger:
        """Connect, apply pending migrations and start the writer."""
        engine = create_engine(database_url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        ledger = cls(engine)
        ledger.generations._writer.start()
        return ledger

    async def close(self) -> None:
        await self.generations._writer.close()
        await self.engine.dispose()
