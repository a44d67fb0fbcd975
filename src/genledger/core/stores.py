"""What the gateway needs of storage: one narrow protocol per family of queries.

The ledger (``genledger.ledger``) implements them over SQLite and PostgreSQL; the
in-process tests implement them in memory. Money is picodollars throughout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from genledger.core.activity import ActivityRows, Grouping
from genledger.core.adjustments import Adjustment
from genledger.core.content import Feedback, GenerationContent
from genledger.core.generation import Generation
from genledger.core.idempotency import Claim, StoredAnswer
from genledger.core.keys import Hold, KeyRecord, Refusal
from genledger.core.prices import PriceVersion
from genledger.core.pricing import Price
from genledger.core.records import record
from genledger.core.statements import Statement


@record
class PeriodUsage:
    """A key's usage in picodollars: the current UTC day, week (from Monday) and month."""

    daily: int = 0
    weekly: int = 0
    monthly: int = 0


@record
class PeriodStarts:
    """Where the current UTC day, week and month began."""

    day: datetime
    week: datetime
    month: datetime


@record
class GenerationFilter:
    """Which generations a read selects; every field that is set must match.

    ``key_id`` None means every key's (operators and management keys only). Times are UTC:
    ``created_after`` inclusive, ``created_before`` exclusive. ``metadata`` pairs must all be
    in the generation's metadata.
    """

    key_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    model: str | None = None
    provider_name: str | None = None
    finish_reason: str | None = None
    streamed: bool | None = None
    cancelled: bool | None = None
    external_user: str | None = None
    session_id: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    min_cost_pico: int | None = None
    drifted: bool | None = None
    """True: the upstream reported a cost of its own (``upstream_cost_pico``) that differs from
    ours by more than ``drift_tolerance_pico``; False: it did not, or within the tolerance."""
    drift_tolerance_pico: int = 0


@record
class Cursor:
    """Where a newest-first walk stopped: the last generation returned."""

    created_at: datetime
    id: str


@record
class Page:
    """One page of a newest-first walk, and where the next one starts (None: the last page)."""

    items: list[Generation]
    next: Cursor | None


class GenerationStore(Protocol):
    async def record(self, generation: Generation, *, reserved: bool = False) -> None:
        """Commit ``generation`` and charge its ``charge_pico`` to its key, in one transaction;
        with ``reserved``, the same transaction gives back the reservation held under the
        generation's id (if it is still held). Returns once durable."""
        ...

    async def get(self, generation_id: str, key_id: str) -> Generation | None:
        """The generation, if it exists and belongs to ``key_id``."""
        ...

    async def lookup(self, generation_id: str) -> Generation | None:
        """The generation whoever owns it: for operators, never for API callers."""
        ...

    async def usage_in_periods(self, key_ids: Sequence[str], starts: PeriodStarts) -> dict[str, PeriodUsage]:
        """Each key's charges plus adjustments in the current day, week and month (an
        adjustment counts where the generation it adjusts does)."""
        ...

    async def last_used(self, key_ids: Sequence[str]) -> dict[str, datetime]:
        """When each key's latest generation was made; keys never used are absent."""
        ...

    async def usage_by_day(self, key_id: str, since: datetime) -> list[tuple[str, int, int]]:
        """(UTC day, generations, picodollars with adjustments) for each day with usage since ``since``."""
        ...

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[Adjustment]:
        """Write the adjustments not written yet (by ``Adjustment.id``) and charge each to its
        key, in one transaction; the ones written. Never updates or deletes an entry."""
        ...

    async def adjustments_of(self, generation_ids: Sequence[str]) -> dict[str, tuple[Adjustment, ...]]:
        """The adjustments of each generation that has any, oldest first."""
        ...

    async def adjustments_written(self, start: datetime, end: datetime) -> list[Adjustment]:
        """Adjustments written in ``[start, end)``, by id."""
        ...

    async def list(self, where: GenerationFilter, *, limit: int, after: Cursor | None = None) -> Page:
        """Up to ``limit`` matching generations, newest first (``created_at``, then ``id``),
        continuing after ``after``. Keyset paging: rows written meanwhile never shift a page."""
        ...

    async def activity(
        self,
        where: GenerationFilter,
        group_by: Sequence[Grouping],
        *,
        latency: bool = False,
        newest: int | None = None,
    ) -> ActivityRows:
        """The matching generations summed per group (days and hours UTC), in group order.

        With ``newest``, only the newest ``newest`` matching generations (by ``created_at``,
        then ``id``) are summed: a bounded sample, for what cannot be rolled up (percentiles,
        users, sessions).

        Sums are exact integers over every matching generation (usage is ``charge_pico`` plus
        the generation's adjustments;
        unknown token counts add 0); ``errors`` counts ``finish_reason == "error"``. With
        ``latency``, each row also has the p50 and p95 of ``latency_ms`` as PostgreSQL's
        ``percentile_cont`` computes them.
        """
        ...


async def walk(
    store: GenerationStore, where: GenerationFilter, *, batch: int, first: Page | None = None
) -> AsyncIterator[list[Generation]]:
    """Every generation matching ``where``, newest first, ``batch`` at a time.

    Keyset pages, one after the other: only the current batch is held, however many match.
    ``first`` is the first page when the caller has read it already.
    """
    page = first if first is not None else await store.list(where, limit=batch)
    while True:
        if page.items:
            yield page.items
        if page.next is None:
            return
        page = await store.list(where, limit=batch, after=page.next)


class KeyStore(Protocol):
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
        """A new key and its secret (shown once, never stored). ``KeyExists`` for a taken name."""
        ...

    async def rotate(self, name: str) -> tuple[KeyRecord, str] | None:
        """A new secret for the key ``name``; None if there is no such key."""
        ...

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None: ...

    async def find_by_name(self, name: str) -> KeyRecord | None: ...

    async def find_by_id(self, key_id: str) -> KeyRecord | None: ...

    async def list(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        ...

    async def set_disabled(self, name: str, disabled: bool = True) -> bool: ...

    async def update(self, key_hash: str, **changes: Any) -> KeyRecord | None:
        """Change name, label, limit_pico, limit_reset, disabled, rate limits or expires_at; None if absent.

        ``KeyExists`` for a taken name; ``ValueError`` for anything else.
        """
        ...

    async def delete(self, key_hash: str) -> bool: ...

    async def reserve(
        self, key_id: str, amount: int, period_start: datetime | None, hold: Hold
    ) -> Refusal | None:
        """Reserve ``amount`` of the key's credit atomically, held as ``hold``; None when reserved.

        A ``period_start`` later than the stored one starts a new limit period first.
        """
        ...

    async def release(self, hold_id: str) -> None:
        """Give back a reservation whose request produced nothing to charge (once: a
        reservation settled, released or reclaimed already is left alone)."""
        ...

    async def renew(self, owner: str, expires_at: datetime) -> int:
        """Extend the lease of every reservation ``owner`` holds; how many it holds."""
        ...

    async def reclaim(self, *, expired_before: datetime | None = None, owner: str | None = None) -> int:
        """Give back the reservations whose lease ran out before ``expired_before`` (default:
        now), or every one ``owner`` holds; how many were given back."""
        ...

    async def held(self, key_id: str | None = None) -> tuple[tuple[str, str, int], ...]:
        """(reservation id, owner, picodollars) of the reservations held (for ``key_id``)."""
        ...


class ContentStore(Protocol):
    """Stored prompts and answers (only those the content policy keeps)."""

    async def put(self, content: GenerationContent) -> None: ...

    async def get(self, generation_id: str, key_id: str, since: datetime) -> GenerationContent | None:
        """The key's own generation's content, unless made before ``since`` (expired)."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete content made before ``before``; how many were deleted."""
        ...


class FeedbackStore(Protocol):
    """One feedback per generation; a second one from the same key replaces the first."""

    async def put(self, feedback: Feedback) -> None: ...

    async def for_generations(self, generation_ids: Sequence[str]) -> dict[str, Feedback]: ...


class PriceStore(Protocol):
    async def sync(
        self, model: str, price: Price, now: datetime, endpoints: Mapping[str, Price] | None = None
    ) -> PriceVersion:
        """The model's current version: a new one effective ``now`` if ``price`` or its fallback
        ``endpoints``' prices differ from the latest (or there is none), else the latest. Safe
        when instances start together."""
        ...

    async def history(self, model: str) -> list[PriceVersion]:
        """Every version of the model's prices, oldest first."""
        ...


class StatementStore(Protocol):
    async def seal(self, statement: Statement) -> bool:
        """Store a closed day with its entries; False (nothing written) if it was closed already."""
        ...

    async def statements(self, *, entries: bool = False) -> list[Statement]:
        """Every closed day, oldest first; with each day's entry digests when ``entries``."""
        ...


class IdempotencyStore(Protocol):
    async def claim(
        self, key_id: str, idempotency_key: str, fingerprint: str, now: datetime, lease: timedelta
    ) -> Claim:
        """Claim the key's idempotency key for a call, atomically; or what holds it.

        An expired claim (older than ``TTL``), or a running one older than ``lease`` (the
        longest a call may run: its process died), is taken over.
        """
        ...

    async def finish(self, key_id: str, idempotency_key: str, answer: StoredAnswer) -> None:
        """Keep the claimed call's answer for its retries."""
        ...

    async def release(self, key_id: str, idempotency_key: str) -> None:
        """Give the claim up: the call failed before anything was charged, so a retry runs again."""
        ...
