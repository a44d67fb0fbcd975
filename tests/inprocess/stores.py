"""In-memory implementations of the storage protocols, for the in-process tier only.

They keep the SQL stores' semantics (``tests/ledger/test_store_contract.py`` runs the same
checks against both): a key's usage is the sum of its generations' charges, a reservation
never lets usage plus reservations exceed the limit, names are unique.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from genledger.config import Settings
from genledger.core.activity import (
    PERCENTILES,
    ActivityRow,
    ActivityRows,
    By,
    Grouping,
    day_of,
    group_order,
    hour_of,
    percentile,
)
from genledger.core.adjustments import Adjustment
from genledger.core.content import Feedback, GenerationContent
from genledger.core.generation import Generation
from genledger.core.idempotency import TTL, Claim, Claimed, Finished, Mismatch, Running, StoredAnswer
from genledger.core.ids import hash_key, new_api_key
from genledger.core.keys import Hold, KeyExists, KeyRecord, Refusal
from genledger.core.prices import PriceVersion, current_version
from genledger.core.pricing import Price
from genledger.core.reconcile import drifted
from genledger.core.statements import Statement
from genledger.core.stores import Cursor, GenerationFilter, Page, PeriodStarts, PeriodUsage
from genledger.gateway.services import Services
from genledger.limits.ratelimit import MemoryRateLimiter
from genledger.providers.demo import DemoProvider

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


@dataclasses.dataclass(slots=True)
class _Reservation:
    key_id: str
    owner: str
    amount: int
    lease_expires_at: datetime


class MemoryKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}  # by id
        self.reservations: dict[str, _Reservation] = {}  # by hold id

    def _by(self, attribute: str, value: Any) -> KeyRecord | None:
        return next((k for k in self.keys.values() if getattr(k, attribute) == value), None)

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
        if self._by("name", name) is not None:
            raise KeyExists(f"a key named {name!r} exists already")
        secret = new_api_key()
        now = datetime.now(UTC)
        key = KeyRecord(
            id=str(uuid.uuid4()),
            hash=hash_key(secret),
            name=name,
            label=label or f"{secret[:12]}...{secret[-3:]}",
            is_management=management,
            disabled=False,
            limit_pico=limit_pico,
            limit_reset=limit_reset,
            usage_pico=0,
            created_at=now,
            updated_at=now,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            store_content=store_content,
            expires_at=expires_at,
            include_byok_in_limit=include_byok_in_limit,
        )
        self.keys[key.id] = key
        return key, secret

    async def rotate(self, name: str) -> tuple[KeyRecord, str] | None:
        key = self._by("name", name)
        if key is None:
            return None
        secret = new_api_key()
        key = self.keys[key.id] = dataclasses.replace(key, hash=hash_key(secret), disabled=False)
        return key, secret

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        return self._by("hash", key_hash)

    async def find_by_name(self, name: str) -> KeyRecord | None:
        return self._by("name", name)

    async def find_by_id(self, key_id: str) -> KeyRecord | None:
        return self.keys.get(key_id)

    async def list(self) -> list[KeyRecord]:
        return sorted(self.keys.values(), key=lambda k: k.created_at)

    async def set_disabled(self, name: str, disabled: bool = True) -> bool:
        key = self._by("name", name)
        if key is None:
            return False
        self.keys[key.id] = dataclasses.replace(key, disabled=disabled)
        return True

    async def update(self, key_hash: str, **changes: Any) -> KeyRecord | None:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
        key = self._by("hash", key_hash)
        if key is None:
            return None
        other = self._by("name", changes.get("name"))
        if other is not None and other.id != key.id:
            raise KeyExists(f"a key named {changes['name']!r} exists already")
        if "limit_reset" in changes:
            changes.update(period_start=None, period_usage_pico=0)
        key = self.keys[key.id] = dataclasses.replace(key, **changes, updated_at=datetime.now(UTC))
        return key

    async def delete(self, key_hash: str) -> bool:
        key = self._by("hash", key_hash)
        return key is not None and self.keys.pop(key.id, None) is not None

    async def reserve(
        self, key_id: str, amount: int, period_start: datetime | None, hold: Hold
    ) -> Refusal | None:
        key = self.keys.get(key_id)
        if key is None:
            return Refusal.KEY_LIMIT
        if period_start is not None and (key.period_start is None or key.period_start < period_start):
            key = dataclasses.replace(key, period_usage_pico=0, period_start=period_start)
            self.keys[key_id] = key
        if (
            key.limit_pico is not None
            and key.limited_usage_pico + key.reserved_pico + amount > key.limit_pico
        ):
            if key.limited_usage_pico + amount > key.limit_pico:
                return Refusal.KEY_LIMIT
            return Refusal.IN_FLIGHT_BUDGET
        self.keys[key_id] = dataclasses.replace(key, reserved_pico=key.reserved_pico + amount)
        self.reservations[hold.id] = _Reservation(key_id, hold.owner, amount, hold.expires_at)
        return None

    def _give_back(self, hold_ids: Sequence[str]) -> int:
        for hold_id in hold_ids:
            reservation = self.reservations.pop(hold_id)
            key = self.keys.get(reservation.key_id)
            if key is not None:
                self.keys[key.id] = dataclasses.replace(
                    key, reserved_pico=key.reserved_pico - reservation.amount
                )
        return len(hold_ids)

    async def release(self, hold_id: str) -> None:
        self._give_back([hold_id] if hold_id in self.reservations else [])

    async def renew(self, owner: str, expires_at: datetime) -> int:
        mine = [r for r in self.reservations.values() if r.owner == owner]
        for reservation in mine:
            reservation.lease_expires_at = expires_at
        return len(mine)

    async def reclaim(self, *, expired_before: datetime | None = None, owner: str | None = None) -> int:
        before = expired_before or datetime.now(UTC)
        return self._give_back(
            [
                hold_id
                for hold_id, r in self.reservations.items()
                if (r.owner == owner if owner is not None else r.lease_expires_at < before)
            ]
        )

    async def held(self, key_id: str | None = None) -> tuple[tuple[str, str, int], ...]:
        return tuple(
            (hold_id, r.owner, r.amount)
            for hold_id, r in self.reservations.items()
            if key_id is None or r.key_id == key_id
        )

    def charge(self, key_id: str, amount: int, *, charged_at: datetime | None = None) -> None:
        """Charge ``amount``; to the limit period only if ``charged_at`` (default: now) is in it."""
        key = self.keys.get(key_id)
        if key is not None:
            in_period = charged_at is None or (
                key.period_start is not None and key.period_start <= charged_at
            )
            self.keys[key_id] = dataclasses.replace(
                key,
                usage_pico=key.usage_pico + amount,
                period_usage_pico=key.period_usage_pico + (amount if in_period else 0),
            )


class MemoryGenerationStore:
    """Records generations and charges them to a :class:`MemoryKeyStore`, as one step."""

    def __init__(self, keys: MemoryKeyStore) -> None:
        self._keys = keys
        self.generations: dict[str, Generation] = {}
        self.adjustments: dict[str, Adjustment] = {}
        self.fail_next: BaseException | None = None  # a test makes the next record fail with this

    async def record(self, generation: Generation, *, reserved: bool = False) -> None:
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        if generation.id in self.generations:
            raise ValueError(f"duplicate generation id {generation.id}")
        self.generations[generation.id] = generation
        self._keys.charge(generation.key_id, generation.charge_pico)
        if reserved:
            await self._keys.release(generation.id)

    async def get(self, generation_id: str, key_id: str) -> Generation | None:
        generation = self.generations.get(generation_id)
        return generation if generation is not None and generation.key_id == key_id else None

    async def lookup(self, generation_id: str) -> Generation | None:
        return self.generations.get(generation_id)

    def _adjusted(self, generation_id: str) -> int:
        return sum(a.amount_pico for a in self.adjustments.values() if a.generation_id == generation_id)

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[Adjustment]:
        new = [a for a in adjustments if a.id not in self.adjustments]
        for a in new:
            self.adjustments[a.id] = a
            self._keys.charge(a.key_id, a.amount_pico, charged_at=a.generation_created_at)
        return new

    async def adjustments_of(self, generation_ids: Sequence[str]) -> dict[str, tuple[Adjustment, ...]]:
        found: dict[str, list[Adjustment]] = {}
        for a in sorted(self.adjustments.values(), key=lambda a: (a.created_at, a.id)):
            if a.generation_id in generation_ids:
                found.setdefault(a.generation_id, []).append(a)
        return {generation_id: tuple(items) for generation_id, items in found.items()}

    async def adjustments_written(self, start: datetime, end: datetime) -> list[Adjustment]:
        return sorted(
            (a for a in self.adjustments.values() if start <= a.created_at < end), key=lambda a: a.id
        )

    async def usage_in_periods(self, key_ids: Sequence[str], starts: PeriodStarts) -> dict[str, PeriodUsage]:
        def since(key_id: str, start: datetime) -> int:
            return sum(
                g.charge_pico
                for g in self.generations.values()
                if g.key_id == key_id and g.created_at >= start
            ) + sum(
                a.amount_pico
                for a in self.adjustments.values()
                if a.key_id == key_id and a.generation_created_at >= start
            )

        return {
            key_id: PeriodUsage(
                since(key_id, starts.day), since(key_id, starts.week), since(key_id, starts.month)
            )
            for key_id in key_ids
        }

    async def last_used(self, key_ids: Sequence[str]) -> dict[str, datetime]:
        latest: dict[str, datetime] = {}
        for g in self.generations.values():
            if g.key_id in key_ids and (g.key_id not in latest or g.created_at > latest[g.key_id]):
                latest[g.key_id] = g.created_at
        return latest

    async def usage_by_day(self, key_id: str, since: datetime) -> list[tuple[str, int, int]]:
        days: dict[str, list[int]] = {}
        for g in self.generations.values():
            if g.key_id == key_id and g.created_at >= since:
                day = days.setdefault(g.created_at.date().isoformat(), [0, 0])
                day[0] += 1
                day[1] += g.charge_pico
        for a in self.adjustments.values():
            if a.key_id == key_id and a.generation_created_at >= since:
                days.setdefault(a.generation_created_at.date().isoformat(), [0, 0])[1] += a.amount_pico
        return [(day, count, usage) for day, (count, usage) in sorted(days.items())]

    def _matching(self, where: GenerationFilter, after: Cursor | None = None) -> list[Generation]:
        def matches(g: Generation) -> bool:
            checks = [
                where.key_id is None or g.key_id == where.key_id,
                where.created_after is None or g.created_at >= where.created_after,
                where.created_before is None or g.created_at < where.created_before,
                where.min_cost_pico is None or g.total_cost_pico >= where.min_cost_pico,
                all((g.metadata or {}).get(k) == v for k, v in where.metadata),
                after is None or (g.created_at, g.id) < (after.created_at, after.id),
                where.drifted is None or drifted(g, where.drift_tolerance_pico) == where.drifted,
            ]
            for name in ("model", "provider_name", "finish_reason", "streamed", "cancelled"):
                checks.append(getattr(where, name) is None or getattr(g, name) == getattr(where, name))
            for name in ("external_user", "session_id"):
                checks.append(getattr(where, name) is None or getattr(g, name) == getattr(where, name))
            return all(checks)

        return [g for g in self.generations.values() if matches(g)]

    async def list(self, where: GenerationFilter, *, limit: int, after: Cursor | None = None) -> Page:
        found = sorted(self._matching(where, after), key=lambda g: (g.created_at, g.id), reverse=True)
        items = found[:limit]
        more = len(found) > limit
        return Page(items, Cursor(items[-1].created_at, items[-1].id) if more else None)

    async def activity(
        self,
        where: GenerationFilter,
        group_by: Sequence[Grouping],
        *,
        latency: bool = False,
        newest: int | None = None,
    ) -> ActivityRows:
        groups: dict[tuple[str | None, ...], list[Generation]] = {}
        matching = list(self._matching(where))
        if newest is not None:
            matching = sorted(matching, key=lambda g: (g.created_at, g.id), reverse=True)[:newest]
        for g in matching:
            groups.setdefault(tuple(_value(g, grouping) for grouping in group_by), []).append(g)
        rows = []
        for group, members in groups.items():
            latencies = sorted(g.latency_ms for g in members if g.latency_ms is not None)
            p50, p95 = (
                (percentile(latencies, p) for p in PERCENTILES) if latency and latencies else (None, None)
            )
            rows.append(
                ActivityRow(
                    group,
                    requests=len(members),
                    usage_pico=sum(g.charge_pico + self._adjusted(g.id) for g in members),
                    prompt_tokens=sum(g.tokens_prompt or 0 for g in members),
                    completion_tokens=sum(g.tokens_completion or 0 for g in members),
                    reasoning_tokens=sum(g.native_tokens_reasoning or 0 for g in members),
                    cached_tokens=sum(g.native_tokens_cached or 0 for g in members),
                    errors=sum(g.finish_reason == "error" for g in members),
                    latency_p50_ms=p50,
                    latency_p95_ms=p95,
                )
            )
        return sorted(rows, key=lambda r: group_order(r.group))


class MemoryPriceStore:
    def __init__(self) -> None:
        self.versions: dict[str, list[PriceVersion]] = {}

    async def sync(
        self, model: str, price: Price, now: datetime, endpoints: Mapping[str, Price] | None = None
    ) -> PriceVersion:
        history = self.versions.setdefault(model, [])
        version = current_version(history, model, price, now, endpoints)
        if not history or version is not history[-1]:
            history.append(version)
        return version

    async def history(self, model: str) -> list[PriceVersion]:
        return list(self.versions.get(model, ()))


class MemoryStatementStore:
    def __init__(self) -> None:
        self.sealed: dict[str, Statement] = {}

    async def seal(self, statement: Statement) -> bool:
        day = statement.day.isoformat()
        if day in self.sealed:
            return False
        self.sealed[day] = statement
        return True

    async def statements(self, *, entries: bool = False) -> list[Statement]:
        return [s if entries else dataclasses.replace(s, entries={}) for _, s in sorted(self.sealed.items())]


@dataclasses.dataclass
class _Claim:
    fingerprint: str
    claimed_at: datetime
    answer: StoredAnswer | None = None


class MemoryIdempotencyStore:
    def __init__(self) -> None:
        self.claims: dict[tuple[str, str], _Claim] = {}

    async def claim(
        self, key_id: str, idempotency_key: str, fingerprint: str, now: datetime, lease: timedelta
    ) -> Claim:
        held = self.claims.get((key_id, idempotency_key))
        if held is not None and (
            held.claimed_at < now - TTL or (held.answer is None and held.claimed_at < now - lease)
        ):
            held = None
        if held is None:
            self.claims[(key_id, idempotency_key)] = _Claim(fingerprint, now)
            return Claimed()
        if held.fingerprint != fingerprint:
            return Mismatch()
        return Running() if held.answer is None else Finished(held.answer)

    async def finish(self, key_id: str, idempotency_key: str, answer: StoredAnswer) -> None:
        self.claims[(key_id, idempotency_key)].answer = answer

    async def release(self, key_id: str, idempotency_key: str) -> None:
        held = self.claims.get((key_id, idempotency_key))
        if held is not None and held.answer is None:
            del self.claims[(key_id, idempotency_key)]


def _value(g: Generation, grouping: Grouping) -> str | None:
    match grouping.by:
        case By.DAY:
            return day_of(g.created_at)
        case By.HOUR:
            return hour_of(g.created_at)
        case By.METADATA:
            return (g.metadata or {}).get(grouping.metadata_key or "")
    attribute = {
        By.MODEL: "model",
        By.PROVIDER: "provider_name",
        By.KEY: "key_id",
        By.USER: "external_user",
        By.SESSION: "session_id",
    }[grouping.by]
    value: str | None = getattr(g, attribute)
    return value


class MemoryContentStore:
    def __init__(self) -> None:
        self.content: dict[str, GenerationContent] = {}

    async def put(self, content: GenerationContent) -> None:
        self.content[content.generation_id] = content

    async def get(self, generation_id: str, key_id: str, since: datetime) -> GenerationContent | None:
        found = self.content.get(generation_id)
        if found is None or found.key_id != key_id or found.created_at < since:
            return None
        return found

    async def prune(self, before: datetime) -> int:
        expired = [g for g, c in self.content.items() if c.created_at < before]
        for generation_id in expired:
            del self.content[generation_id]
        return len(expired)


class MemoryFeedbackStore:
    def __init__(self) -> None:
        self.feedback: dict[str, Feedback] = {}

    async def put(self, feedback: Feedback) -> None:
        self.feedback[feedback.generation_id] = feedback

    async def for_generations(self, generation_ids: Sequence[str]) -> dict[str, Feedback]:
        return {g: self.feedback[g] for g in generation_ids if g in self.feedback}


def memory_services(
    settings: Settings, keys: MemoryKeyStore, generations: MemoryGenerationStore, **extra: Any
) -> Services:
    """The gateway's services on in-memory stores and the demo providers of ``settings``."""
    providers = {name: DemoProvider(name, config) for name, config in settings.providers.items()}
    return Services(
        settings,
        keys=keys,
        generations=generations,
        content=MemoryContentStore(),
        feedback=MemoryFeedbackStore(),
        providers=providers,
        limiter=MemoryRateLimiter(),
        **extra,
    )
