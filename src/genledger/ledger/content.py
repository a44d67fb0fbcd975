"""Stored generation content and feedback (the protocols in core/stores.py) over the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.content import Feedback, GenerationContent
from genledger.ledger.hints import one_of
from genledger.ledger.schema import generation_content, generation_feedback


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlContentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def put(self, content: GenerationContent) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(generation_content).values(
                    generation_id=content.generation_id,
                    key_id=content.key_id,
                    created_at=content.created_at,
                    body=content.encoded(),
                )
            )

    async def get(self, generation_id: str, key_id: str, since: datetime) -> GenerationContent | None:
        table = generation_content
        query = select(table.c.created_at, table.c.body).where(
            table.c.generation_id == generation_id, table.c.key_id == key_id, table.c.created_at >= since
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        return GenerationContent.decoded(generation_id, key_id, _utc(row.created_at), bytes(row.body))

    async def prune(self, before: datetime) -> int:
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(generation_content).where(generation_content.c.created_at < before)
            )
        return int(result.rowcount or 0)


class SqlFeedbackStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def put(self, feedback: Feedback) -> None:
        table = generation_feedback
        # Delete then insert, in one transaction: the same on SQLite and PostgreSQL.
        async with self._engine.begin() as connection:
            await connection.execute(delete(table).where(table.c.generation_id == feedback.generation_id))
            await connection.execute(
                insert(table).values(
                    generation_id=feedback.generation_id,
                    key_id=feedback.key_id,
                    category=feedback.category,
                    comment=feedback.comment,
                    created_at=feedback.created_at,
                )
            )

    async def for_generations(self, generation_ids: Sequence[str]) -> dict[str, Feedback]:
        if not generation_ids:
            return {}
        table = generation_feedback
        query = select(table).where(one_of(table.c.generation_id, generation_ids, self._engine.dialect.name))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return {
            row["generation_id"]: Feedback(
                generation_id=row["generation_id"],
                key_id=row["key_id"],
                category=row["category"],
                comment=row["comment"],
                created_at=_utc(row["created_at"]),
            )
            for row in rows
        }
