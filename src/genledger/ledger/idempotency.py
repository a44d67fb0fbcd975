"""Claims of idempotent retries in SQL: one row per API key and idempotency key."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from genledger.core.idempotency import (
    TTL,
    Claim,
    Claimed,
    Finished,
    Mismatch,
    Running,
    StoredAnswer,
)
from genledger.ledger.schema import idempotency_keys as claims

_ATTEMPTS = 3  # two retries racing for an expired claim: the loser reads the winner's


def _this(key_id: str, idempotency_key: str) -> ColumnElement[bool]:
    return and_(claims.c.key_id == key_id, claims.c.idempotency_key == idempotency_key)


class SqlIdempotencyStore:
    """:class:`~genledger.core.stores.IdempotencyStore` over the ledger's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(
        self, key_id: str, idempotency_key: str, fingerprint: str, now: datetime, lease: timedelta
    ) -> Claim:
        this = _this(key_id, idempotency_key)
        for _ in range(_ATTEMPTS):
            try:
                async with self._engine.begin() as connection:
                    # A claim past its time holds nothing: expired, or running past its lease.
                    stale = or_(
                        claims.c.claimed_at < now - TTL,
                        and_(claims.c.finished.is_(False), claims.c.claimed_at < now - lease),
                    )
                    await connection.execute(delete(claims).where(this, stale))
                    row = (await connection.execute(select(claims).where(this))).mappings().first()
                    if row is None:
                        await connection.execute(
                            insert(claims).values(
                                key_id=key_id,
                                idempotency_key=idempotency_key,
                                fingerprint=fingerprint,
                                claimed_at=now,
                                finished=False,
                            )
                        )
                        return Claimed()
            except IntegrityError:
                continue
            if row["fingerprint"] != fingerprint:
                return Mismatch()
            if not row["finished"]:
                return Running()
            return Finished(StoredAnswer(row["status"], row["media_type"], row["body"]))
        return Running()

    async def finish(self, key_id: str, idempotency_key: str, answer: StoredAnswer) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                update(claims)
                .where(_this(key_id, idempotency_key))
                .values(finished=True, status=answer.status, media_type=answer.media_type, body=answer.body)
            )

    async def release(self, key_id: str, idempotency_key: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                delete(claims).where(_this(key_id, idempotency_key), claims.c.finished.is_(False))
            )
