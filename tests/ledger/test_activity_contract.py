"""Activity on every implementation of the store: exact sums per group, equal to the records'."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from genledger.core.activity import (
    DAY,
    ENDPOINT_DAYS,
    HOUR,
    MODEL,
    PROVIDER,
    ActivityRow,
    By,
    Grouping,
    day_of,
    group_order,
    hour_of,
)
from genledger.core.generation import Generation
from genledger.core.stores import GenerationFilter
from tests.ledger import test_list_contract as contract
from tests.ledger.conftest import Stores  # the `stores` fixture: memory, SQLite, PostgreSQL

record = contract.record

T0 = datetime(2026, 11, 1, 22, 30, tzinfo=UTC)
KEY, USER, SESSION, TEAM = (
    Grouping(By.KEY),
    Grouping(By.USER),
    Grouping(By.SESSION),
    Grouping(By.METADATA, "team"),
)
EVERY = (DAY, HOUR, MODEL, PROVIDER, KEY, USER, SESSION, TEAM)
# Charges far above 2**53 picodollars: a float anywhere on the way would lose cents.
BIG = 3 * 10**16 + 7


def value(g: Generation, grouping: Grouping) -> str | None:
    """The oracle: what a generation has for each grouping, straight from its attributes."""
    return {
        By.DAY: lambda: day_of(g.created_at),
        By.HOUR: lambda: hour_of(g.created_at),
        By.MODEL: lambda: g.model,
        By.PROVIDER: lambda: g.provider_name,
        By.KEY: lambda: g.key_id,
        By.USER: lambda: g.external_user,
        By.SESSION: lambda: g.session_id,
        By.METADATA: lambda: (g.metadata or {}).get(grouping.metadata_key or ""),
    }[grouping.by]()


def expected(records: list[Generation], group_by: tuple[Grouping, ...]) -> list[tuple]:
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * 7)
    for g in records:
        total = sums[tuple(value(g, grouping) for grouping in group_by)]
        for i, amount in enumerate(
            (
                1,
                g.charge_pico,
                g.tokens_prompt or 0,
                g.tokens_completion or 0,
                g.native_tokens_reasoning or 0,
                g.native_tokens_cached or 0,
                g.finish_reason == "error",
            )
        ):
            total[i] += amount
    return sorted(((group, *totals) for group, totals in sums.items()), key=lambda t: group_order(t[0]))


def sums_of(rows: list[ActivityRow]) -> list[tuple]:
    return [
        (
            r.group,
            r.requests,
            r.usage_pico,
            r.prompt_tokens,
            r.completion_tokens,
            r.reasoning_tokens,
            r.cached_tokens,
            r.errors,
        )
        for r in rows
    ]


def random_record(rng: random.Random, key_ids: list[str]) -> Generation:
    maybe = lambda values: rng.choice(values)  # noqa: E731
    return record(
        rng.choice(key_ids),
        rng.randrange(0, 3 * 24 * 60),  # three UTC days (and their hours) from T0
        model=maybe(["acme/chat", "acme/big", "other/x"]),
        provider_name=maybe(["Acme", "Other", None]),
        charge_pico=rng.choice([0, 1, rng.randrange(10**12), BIG]),
        tokens_prompt=maybe([None, rng.randrange(10**6)]),
        tokens_completion=maybe([None, rng.randrange(10**5)]),
        native_tokens_reasoning=maybe([None, rng.randrange(1000)]),
        native_tokens_cached=maybe([None, rng.randrange(1000)]),
        finish_reason=maybe(["stop", "error", "length", None]),
        external_user=maybe([None, "u1", "u2"]),
        session_id=maybe([None, "s1"]),
        metadata=maybe([None, {"team": "search"}, {"team": "ads", "env": "prod"}, {"env": "dev"}]),
        latency_ms=maybe([None, float(rng.randrange(1, 5000)), rng.random() * 100]),
    )


async def seed(stores: Stores, count: int, rng: random.Random) -> list[Generation]:
    key_ids = [(await stores.keys.create(name))[0].id for name in ("k1", "k2")]
    records = [random_record(rng, key_ids) for _ in range(count)]
    for g in records:
        await stores.generations.record(g)
    return records


async def test_every_grouping_sums_exactly_the_records(stores: Stores):
    rng = random.Random(9)
    records = await seed(stores, 120, rng)
    combinations = [(), ENDPOINT_DAYS, *((g,) for g in EVERY), *itertools.combinations(EVERY, 2)]
    combinations += [tuple(rng.sample(EVERY, rng.randrange(3, len(EVERY) + 1))) for _ in range(10)]
    for group_by in combinations:
        rows = await stores.generations.activity(GenerationFilter(), group_by)
        assert sums_of(rows) == expected(records, group_by), group_by
        assert all(r.latency_p50_ms is None for r in rows)


async def test_filters_narrow_what_is_summed(stores: Stores):
    rng = random.Random(4)
    records = await seed(stores, 80, rng)
    k1 = records[0].key_id
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    cases = [
        (GenerationFilter(key_id=k1), lambda g: g.key_id == k1),
        (
            GenerationFilter(created_after=since, created_before=until),
            lambda g: since <= g.created_at < until,
        ),
        (
            GenerationFilter(metadata=(("team", "search"),)),
            lambda g: (g.metadata or {}).get("team") == "search",
        ),
        (
            GenerationFilter(model="acme/big", finish_reason="error"),
            lambda g: g.model == "acme/big" and g.finish_reason == "error",
        ),
        (GenerationFilter(model="nothing"), lambda g: False),
    ]
    for where, keep in cases:
        chosen = [g for g in records if keep(g)]
        for group_by in ((), ENDPOINT_DAYS, (TEAM, USER)):
            rows = await stores.generations.activity(where, group_by)
            assert sums_of(rows) == expected(chosen, group_by), (where, group_by)


async def test_latency_percentiles_match_percentile_cont(stores: Stores):
    rng = random.Random(2)
    records = await seed(stores, 150, rng)
    for group_by in ((), (MODEL,), (MODEL, DAY), (TEAM,)):
        rows = await stores.generations.activity(GenerationFilter(), group_by, latency=True)
        assert sums_of(rows) == expected(records, group_by)
        for row in rows:
            latencies = sorted(
                g.latency_ms
                for g in records
                if g.latency_ms is not None and tuple(value(g, x) for x in group_by) == row.group
            )
            if not latencies:
                assert row.latency_p50_ms is None and row.latency_p95_ms is None
                continue
            for fraction, found in ((0.5, row.latency_p50_ms), (0.95, row.latency_p95_ms)):
                position = fraction * (len(latencies) - 1)
                low, high = int(position), min(int(position) + 1, len(latencies) - 1)
                want = latencies[low] + (position - low) * (latencies[high] - latencies[low])
                assert found == pytest.approx(want, rel=1e-12), (group_by, row.group, fraction)


async def test_small_groups_percentiles_and_buckets_are_exact(stores: Stores):
    key, _ = await stores.keys.create("exact")
    for minute, latency in ((0, 10.0), (1, 20.0), (2, 30.0), (3, 40.0), (90, None)):
        await stores.generations.record(record(key.id, minute, latency_ms=latency, charge_pico=BIG))
    rows = await stores.generations.activity(GenerationFilter(key_id=key.id), (DAY, HOUR), latency=True)
    assert [(r.group, r.requests, r.usage_pico) for r in rows] == [
        (("2026-11-01", "2026-11-01T00:00:00Z"), 4, 4 * BIG),
        (("2026-11-01", "2026-11-01T01:00:00Z"), 1, BIG),
    ]
    assert (rows[0].latency_p50_ms, rows[0].latency_p95_ms) == (25.0, pytest.approx(38.5))
    assert (rows[1].latency_p50_ms, rows[1].latency_p95_ms) == (None, None)
    assert await stores.generations.activity(GenerationFilter(model="none"), ()) == []
