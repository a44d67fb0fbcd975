"""The keys store: API keys by hash, their limits, and atomic credit reservations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from genledger.core.ids import hash_key, new_api_key
from genledger.core.keys import Hold, KeyExists, KeyRecord, Refusal
from genledger.ledger.schema import api_keys, reservations
from genledger.ledger.timestamps import utc as _utc


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
        updated_at=_utc(row["updated_at"]) if row["updated_at"] is not None else None,
        reserved_pico=row["reserved_pico"],
        period_usage_pico=row["period_usage_pico"],
        period_start=_utc(row["period_start"]) if row["period_start"] is not None else None,
        requests_per_minute=row["requests_per_minute"],
        tokens_per_minute=row["tokens_per_minute"],
        store_content=row["store_content"] if row["store_content"] is None else bool(row["store_content"]),
        expires_at=_utc(row["expires_at"]) if row["expires_at"] is not None else None,
        include_byok_in_limit=bool(row["include_byok_in_limit"]),
    )


def _label(secret: str) -> str:
    return f"{secret[:12]}...{secret[-3:]}"


# The usage a key's limit applies to, in SQL (see KeyRecord.limited_usage_pico).
_LIMITED_USAGE = case(
    (api_keys.c.limit_reset.is_(None), api_keys.c.usage_pico), else_=api_keys.c.period_usage_pico
)


_UPDATABLE = frozenset(
    {
        "name",
        "label",
        "limit_pico",
        "limit_reset",
        "disabled",
        "requests_per_minute",
        "tokens_per_minute",
        "store_content",
        "expires_at",
        "include_byok_in_limit",
    }
)


async def _give_back(connection: AsyncConnection, which: ColumnElement[bool]) -> int:
    """Delete the reservations ``which`` selects and take them off their keys' reserved credit.

    DELETE ... RETURNING decides who gives a reservation back: of a settling record, a failed
    request and another instance's sweep, only the one whose DELETE removed the row does.
    Keys are updated in id order, as the writer does, so concurrent transactions cannot
    deadlock on them. The number of reservations given back.
    """
    rows = (
        await connection.execute(
            delete(reservations).where(which).returning(reservations.c.key_id, reservations.c.amount_pico)
        )
    ).all()
    held: dict[str, int] = {}
    for key_id, amount in rows:
        held[key_id] = held.get(key_id, 0) + amount
    for key_id in sorted(held):
        await connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(reserved_pico=api_keys.c.reserved_pico - held[key_id])
        )
    return len(rows)


class SqlKeyStore:
    """:class:`~genledger.core.stores.KeyStore` over the ledger's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        name: str,
        *,
        limit_pico: int | None = None,
        limit_reset: str | None = None,
        management: bool = False,
        label: str | None = None,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        store_content: bool | None = None,
        expires_at: datetime | None = None,
        include_byok_in_limit: bool = False,
    ) -> tuple[KeyRecord, str]:
        """A new key and its secret; the secret is not kept and cannot be shown again."""
        secret = new_api_key()
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "hash": hash_key(secret),
            "name": name,
            "label": label or _label(secret),
            "is_management": management,
            "disabled": False,
            "limit_pico": limit_pico,
            "limit_reset": limit_reset,
            "usage_pico": 0,
            "created_at": now,
            "updated_at": now,
            "reserved_pico": 0,
            "period_usage_pico": 0,
            "period_start": None,
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
            "store_content": store_content,
            "expires_at": expires_at,
            "include_byok_in_limit": include_byok_in_limit,
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
                    hash=hash_key(secret), label=_label(secret), disabled=False, updated_at=datetime.now(UTC)
                )
            )
            if result.rowcount == 0:
                return None
            row = (await connection.execute(select(api_keys).where(api_keys.c.name == name))).mappings().one()
        return _key(row), secret

    async def _one(self, condition: Any) -> KeyRecord | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(api_keys).where(condition))).mappings().first()
        return _key(row) if row is not None else None

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self._one(api_keys.c.hash == key_hash)

    async def find_by_name(self, name: str) -> KeyRecord | None:
        return await self._one(api_keys.c.name == name)

    async def find_by_id(self, key_id: str) -> KeyRecord | None:
        return await self._one(api_keys.c.id == key_id)

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

    async def update(self, key_hash: str, **changes: Any) -> KeyRecord | None:
        """Change a key's name, label, limit, limit_reset, disabled, rate limits or expiry; None if absent."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
        if "limit_reset" in changes:
            changes["period_start"] = None  # a new period starts with the next request
            changes["period_usage_pico"] = 0
        try:
            async with self._engine.begin() as connection:
                result = await connection.execute(
                    update(api_keys)
                    .where(api_keys.c.hash == key_hash)
                    .values(**changes, updated_at=datetime.now(UTC))
                )
        except IntegrityError:
            raise KeyExists(f"a key named {changes.get('name')!r} exists already") from None
        if result.rowcount == 0:
            return None
        return await self.find_by_hash(key_hash)

    async def delete(self, key_hash: str) -> bool:
        """Delete a key. Its generations stay in the ledger (operators can still read them)."""
        async with self._engine.begin() as connection:
            result = await connection.execute(delete(api_keys).where(api_keys.c.hash == key_hash))
        return bool(result.rowcount)

    async def reserve(
        self, key_id: str, amount: int, period_start: datetime | None, hold: Hold
    ) -> Refusal | None:
        """Reserve ``amount`` of the key's credit for a request, held as ``hold``; None when reserved.

        One conditional UPDATE decides, so under any concurrency, across any number of
        gateway instances, usage plus reservations never exceed the limit; the reservation's
        row is inserted in the same transaction. A new limit period (``period_start`` later
        than the stored one) zeroes the period's usage first.
        """
        async with self._engine.begin() as connection:
            if period_start is not None:
                await connection.execute(
                    update(api_keys)
                    .where(
                        api_keys.c.id == key_id,
                        or_(api_keys.c.period_start.is_(None), api_keys.c.period_start < period_start),
                    )
                    .values(period_usage_pico=0, period_start=period_start)
                )
            result = await connection.execute(
                update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    or_(
                        api_keys.c.limit_pico.is_(None),
                        _LIMITED_USAGE + api_keys.c.reserved_pico + amount <= api_keys.c.limit_pico,
                    ),
                )
                .values(reserved_pico=api_keys.c.reserved_pico + amount)
            )
            if result.rowcount == 1:
                await connection.execute(
                    insert(reservations).values(
                        id=hold.id,
                        key_id=key_id,
                        owner=hold.owner,
                        amount_pico=amount,
                        created_at=datetime.now(UTC),
                        lease_expires_at=hold.expires_at,
                    )
                )
                return None
            row = (
                await connection.execute(
                    select(_LIMITED_USAGE.label("used"), api_keys.c.limit_pico).where(api_keys.c.id == key_id)
                )
            ).first()
        if row is None or row.limit_pico is None or row.used + amount > row.limit_pico:
            return Refusal.KEY_LIMIT
        return Refusal.IN_FLIGHT_BUDGET

    async def release(self, hold_id: str) -> None:
        """Give back the reservation ``hold_id`` whose request produced nothing to charge.

        A reservation given back already (settled, released, or reclaimed) is left alone.
        """
        async with self._engine.begin() as connection:
            await _give_back(connection, reservations.c.id == hold_id)

    async def renew(self, owner: str, expires_at: datetime) -> int:
        """Extend the lease of every reservation ``owner`` holds to ``expires_at``; how many."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(reservations).where(reservations.c.owner == owner).values(lease_expires_at=expires_at)
            )
        return result.rowcount

    async def reclaim(self, *, expired_before: datetime | None = None, owner: str | None = None) -> int:
        """Give back reservations whose lease ran out before ``expired_before``, or all of ``owner``'s.

        The number given back.
        """
        which = (
            reservations.c.owner == owner
            if owner is not None
            else reservations.c.lease_expires_at < (expired_before or datetime.now(UTC))
        )
        async with self._engine.begin() as connection:
            return await _give_back(connection, which)

    async def held(self, key_id: str | None = None) -> tuple[tuple[str, str, int], ...]:
        """(reservation id, owner, picodollars) of every reservation (of ``key_id``), for operators."""
        query = select(reservations.c.id, reservations.c.owner, reservations.c.amount_pico)
        if key_id is not None:
            query = query.where(reservations.c.key_id == key_id)
        async with self._engine.connect() as connection:
            return tuple((r.id, r.owner, r.amount_pico) for r in await connection.execute(query))
