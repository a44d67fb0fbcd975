"""The dashboard's overview as a use case: spend over time, the top spenders, latency per model.

Built only on the read side's indexed queries (``GenerationStore.activity`` over one time
window) and the key store. A management key sees the account; any other key its own
generations, with no per-key ranking.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from genledger.core.activity import DAY, HOUR, MODEL, ActivityRow, By, Grouping, day_of, hour_of
from genledger.core.keys import KeyRecord
from genledger.core.records import record
from genledger.core.stores import GenerationFilter, GenerationStore, KeyStore

TOP = 10
"""Rows each ranking shows."""
SAMPLE = 2000
"""Latency percentiles, users and sessions are read from the window's newest generations, this
many at most: they cannot be rolled up exactly, and reading a month of rows costs seconds."""


class Window(StrEnum):
    """How far back the overview looks."""

    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def span(self) -> timedelta:
        return {Window.DAY: timedelta(days=1), Window.WEEK: timedelta(days=7)}.get(self, timedelta(days=30))

    @property
    def bucket(self) -> Grouping:
        """Hours for a day or a week, days for a month."""
        return DAY if self is Window.MONTH else HOUR


@record
class Point:
    """One bucket of the time series: its UTC start as text, and its sums."""

    bucket: str
    requests: int
    usage_pico: int
    errors: int


@record
class Ranked:
    """One row of a ranking: what it is (a model, a key's name, a user, a session) and its sums."""

    name: str
    requests: int
    usage_pico: int
    errors: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@record
class Overview:
    window: Window
    since: datetime
    series: list[Point]
    models: list[Ranked]
    keys: list[Ranked]  # empty unless the caller is a management key
    users: list[Ranked]
    sessions: list[Ranked]
    reserved_pico: int
    """Credit reserved by requests in flight (the account's, or the caller's key's)."""
    reserving_keys: int
    sampled_usage_pico: int = 0
    """The sample's spend: what the users' and sessions' shares are of."""
    sampled: int = 0
    """How many of the window's newest generations the percentiles, users and sessions are
    read from (at most the reader's sample, ``SAMPLE`` by default); the totals, series,
    models and keys count every one."""

    @property
    def sample_is_partial(self) -> bool:
        return self.sampled < self.requests

    @property
    def requests(self) -> int:
        return sum(point.requests for point in self.series)

    @property
    def usage_pico(self) -> int:
        return sum(point.usage_pico for point in self.series)

    @property
    def errors(self) -> int:
        return sum(point.errors for point in self.series)


def buckets(since: datetime, until: datetime, by: Grouping) -> list[str]:
    """Every bucket label from the one holding ``since`` to the one holding ``until``."""
    step = timedelta(hours=1) if by.by is By.HOUR else timedelta(days=1)
    label = hour_of if by.by is By.HOUR else day_of
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if by.by is By.DAY:
        start = start.replace(hour=0)
    found = []
    while start <= until:
        found.append(label(start))
        start += step
    return found


def _ranked(rows: Sequence[ActivityRow], name_of: dict[str, str] | None = None) -> list[Ranked]:
    named = [row for row in rows if row.group[0] is not None]
    named.sort(key=lambda row: (-row.usage_pico, -row.requests, row.group[0] or ""))
    return [
        Ranked(
            name=(name_of or {}).get(row.group[0] or "", row.group[0] or ""),
            requests=row.requests,
            usage_pico=row.usage_pico,
            errors=row.errors,
            latency_p50_ms=row.latency_p50_ms,
            latency_p95_ms=row.latency_p95_ms,
        )
        for row in named[:TOP]
    ]


def _with_latency(rows: Sequence[ActivityRow], sampled: Sequence[ActivityRow]) -> list[ActivityRow]:
    """Every model's exact sums, with the percentiles of its sampled generations (if any)."""
    percentiles = {row.group: (row.latency_p50_ms, row.latency_p95_ms) for row in sampled}
    return [
        dataclasses.replace(row, latency_p50_ms=p50, latency_p95_ms=p95)
        for row in rows
        for p50, p95 in [percentiles.get(row.group, (None, None))]
    ]


class OverviewReader:
    def __init__(self, keys: KeyStore, generations: GenerationStore, *, sample: int = SAMPLE) -> None:
        self._keys = keys
        self._generations = generations
        self._sample = sample

    async def overview(self, caller: KeyRecord, window: Window, *, now: datetime | None = None) -> Overview:
        now = now or datetime.now(UTC)
        since = now - window.span
        where = GenerationFilter(key_id=None if caller.is_management else caller.id, created_after=since)

        async def by(grouping: Grouping, *, newest: int | None = None) -> list[ActivityRow]:
            return await self._generations.activity(
                where, [grouping], latency=grouping == MODEL and newest is not None, newest=newest
            )

        # Independent reads: on SQLite each runs in its own pooled connection's thread, so they
        # overlap instead of queueing. Totals come from the rollup (every generation); what
        # cannot be rolled up comes from a bounded sample of the newest.
        every_key = await self._keys.list() if caller.is_management else []
        exact = [window.bucket, MODEL, *([Grouping(By.KEY)] if caller.is_management else [])]
        sampled = [MODEL, Grouping(By.USER), Grouping(By.SESSION)]
        found = await asyncio.gather(*(by(g) for g in exact), *(by(g, newest=self._sample) for g in sampled))
        series_rows, model_rows, *rest = found
        by_key = rest[: len(exact) - 2]
        latencies, users, sessions = rest[len(exact) - 2 :]
        model_rows = _with_latency(model_rows, latencies)
        sums = {row.group[0]: row for row in series_rows}
        series = [
            Point(label, row.requests, row.usage_pico, row.errors)
            if (row := sums.get(label)) is not None
            else Point(label, 0, 0, 0)
            for label in buckets(since, now, window.bucket)
        ]
        if caller.is_management:
            keys = _ranked(by_key[0], {key.id: key.name for key in every_key})
            in_flight = [key for key in every_key if key.reserved_pico > 0]
        else:
            own = await self._keys.find_by_id(caller.id)
            keys, in_flight = [], [own] if own is not None and own.reserved_pico > 0 else []
        return Overview(
            window=window,
            since=since,
            series=series,
            models=_ranked(model_rows),
            keys=keys,
            users=_ranked(users),
            sessions=_ranked(sessions),
            reserved_pico=sum(key.reserved_pico for key in in_flight),
            reserving_keys=len(in_flight),
            sampled=sum(row.requests for row in latencies),
            sampled_usage_pico=sum(row.usage_pico for row in latencies),
        )
