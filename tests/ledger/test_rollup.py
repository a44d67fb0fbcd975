"""The activity rollup on SQLite and PostgreSQL: its sums equal the records' plus adjustments,
to the picodollar, whichever parts of a window it answers, whenever adjustments are written,
and however many instances catch it up at once."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from genledger.core.activity import (
    DAY,
    HOUR,
    KEY,
    MODEL,
    PROVIDER,
    ActivityRow,
    Grouping,
    day_of,
    group_order,
    hour_of,
)
from genledger.core.adjustments import Adjustment
from genledger.core.generation import Generation
from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger
from genledger.ledger.rollup import Watermarks, floor_day, plan
from genledger.ledger.schema import activity_days, activity_hours
from tests.ledger import test_list_contract as contract
from tests.services import postgres_database

NOW = datetime.now(UTC)
BIG = 3 * 10**16 + 7  # far above 2**53: a float on the way would lose picodollars
MODELS = ("acme/chat", "acme/big", "other/small")
PROVIDERS = ("Acme", "Other", None)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/rollup.db"
    else:
        with postgres_database() as found:
            yield found


@pytest.fixture
async def ledger(url: str) -> AsyncIterator[Ledger]:
    opened = await Ledger.open(url)
    try:
        yield opened
    finally:
        await opened.close()


async def _seed(ledger: Ledger) -> tuple[list[Generation], list[str]]:
    """Three days of generations up to a few minutes ago, over two keys, models and providers."""
    keys = [(await ledger.keys.create(name))[0].id for name in ("alice", "bob")]
    rng = random.Random(7)
    records = []
    for i in range(240):
        at = NOW - timedelta(minutes=3 + rng.randrange(3 * 24 * 60))
        records.append(
            contract.record(
                rng.choice(keys),
                0,
                created_at=at,
                model=rng.choice(MODELS),
                provider_name=rng.choice(PROVIDERS),
                charge_pico=BIG + i,
                total_cost_pico=BIG + i,
                tokens_prompt=rng.randrange(1000),
                tokens_completion=rng.choice((None, rng.randrange(500))),
                native_tokens_reasoning=rng.randrange(50),
                native_tokens_cached=rng.randrange(20),
                finish_reason=rng.choice(("stop", "stop", "error")),
            )
        )
    for generation in records:
        await ledger.generations.record(generation)
    return records, keys


def _adjust(generation: Generation, amount: int, version: int, at: datetime) -> Adjustment:
    return Adjustment(
        generation_id=generation.id,
        key_id=generation.key_id,
        model=generation.model,
        generation_created_at=generation.created_at,
        amount_pico=amount,
        from_version=None,
        to_version=version,
        reason="test",
        created_at=at,
    )


def _value(g: Generation, grouping: Grouping) -> str | None:
    return {
        DAY: lambda: day_of(g.created_at),
        HOUR: lambda: hour_of(g.created_at),
        MODEL: lambda: g.model,
        PROVIDER: lambda: g.provider_name,
        KEY: lambda: g.key_id,
    }[grouping]()


def _sums(r: ActivityRow) -> tuple:
    counts = (r.requests, r.usage_pico, r.prompt_tokens, r.completion_tokens, r.reasoning_tokens)
    return (r.group, *counts, r.cached_tokens, r.errors)


def _order(row: tuple) -> tuple:
    return group_order(row[0])


def _expected(
    records: list[Generation], adjusted: dict[str, int], where: GenerationFilter, group_by: tuple
) -> list[tuple]:
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * 7)
    for g in records:
        if where.key_id is not None and g.key_id != where.key_id:
            continue
        if where.model is not None and g.model != where.model:
            continue
        if where.created_after is not None and g.created_at < where.created_after:
            continue
        if where.created_before is not None and g.created_at >= where.created_before:
            continue
        total = sums[tuple(_value(g, grouping) for grouping in group_by)]
        for i, amount in enumerate(
            (
                1,
                g.charge_pico + adjusted.get(g.id, 0),
                g.tokens_prompt or 0,
                g.tokens_completion or 0,
                g.native_tokens_reasoning or 0,
                g.native_tokens_cached or 0,
                g.finish_reason == "error",
            )
        ):
            total[i] += amount
    return sorted(((group, *totals) for group, totals in sums.items()), key=_order)


async def _check(
    ledger: Ledger, records: list[Generation], adjusted: dict[str, int], keys: list[str]
) -> None:
    windows = [
        GenerationFilter(),
        GenerationFilter(created_after=NOW - timedelta(days=2, minutes=17)),
        GenerationFilter(created_after=NOW - timedelta(hours=30), created_before=NOW - timedelta(hours=5)),
        GenerationFilter(key_id=keys[0], created_after=NOW - timedelta(days=1)),
        GenerationFilter(model="acme/big", created_before=NOW - timedelta(hours=1, minutes=13)),
    ]
    groupings = [(DAY, MODEL, PROVIDER), (HOUR,), (KEY,), (DAY, KEY), ()]
    for where in windows:
        for group_by in groupings:
            rows = await ledger.generations.activity(where, group_by)
            found = sorted(
                (_sums(r) for r in rows),
                key=_order,
            )
            assert found == _expected(records, adjusted, where, group_by), (where, group_by)


async def _rolled_rows(ledger: Ledger) -> tuple[int, int]:
    async with ledger.engine.connect() as connection:
        hours = (await connection.execute(select(func.count()).select_from(activity_hours))).scalar()
        days = (await connection.execute(select(func.count()).select_from(activity_days))).scalar()
    return int(hours or 0), int(days or 0)


async def test_rollup_sums_equal_records_plus_adjustments_to_the_picodollar(ledger: Ledger):
    records, keys = await _seed(ledger)
    adjusted: dict[str, int] = defaultdict(int)
    # Written before the first read: rolled up with its generation's hour.
    early = records[0]
    await ledger.generations.adjust([_adjust(early, -BIG // 3, 2, NOW - timedelta(days=4))])
    adjusted[early.id] += -BIG // 3

    await _check(ledger, records, adjusted, keys)
    marks = await ledger.generations.rollup.catch_up()
    # Against the clock now, not the module's NOW: the run may have crossed an hour's close.
    assert marks.hours is not None and marks.hours <= datetime.now(UTC) - ledger.generations.rollup.grace
    hours, days = await _rolled_rows(ledger)
    assert hours > 0 and days > 0  # the reads above were answered from the rollup

    # Written after the watermark, of generations rolled up already: read from the entries.
    late = [g for g in records if g.created_at < marks.hours - timedelta(hours=30)][:5]
    await ledger.generations.adjust([_adjust(g, 12_345 + i, 3, NOW) for i, g in enumerate(late)])
    for i, g in enumerate(late):
        adjusted[g.id] += 12_345 + i
    await _check(ledger, records, adjusted, keys)

    # The watermark moves past them (as it will, a day on): rolled into the hours and days then.
    await ledger.generations.rollup.catch_up(NOW + timedelta(days=2))
    await _check(ledger, records, adjusted, keys)


async def test_instances_catching_up_together_count_each_generation_once(url: str, ledger: Ledger):
    records, keys = await _seed(ledger)
    others = [await Ledger.open(url) for _ in range(2)]
    try:
        rollups = [ledger.generations.rollup, *(other.generations.rollup for other in others)]
        reached = await asyncio.gather(*(rollup.catch_up() for rollup in rollups))
        assert len({marks.hours for marks in reached}) == 1
        await _check(ledger, records, {}, keys)
    finally:
        for other in others:
            await other.close()


def test_a_window_splits_into_whole_days_whole_hours_and_raw_edges():
    w = datetime(2026, 11, 27, 9, tzinfo=UTC)
    marks = Watermarks(hours=w, days=floor_day(w))
    where = GenerationFilter(created_after=datetime(2026, 11, 20, 7, 30, tzinfo=UTC))
    split = plan(where, marks, hourly=False)
    assert split is not None
    assert split.days == (datetime(2026, 11, 21, tzinfo=UTC), floor_day(w))
    assert split.hours == [
        (datetime(2026, 11, 20, 8, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)),
        (floor_day(w), w),
    ]
    assert split.raw == [(where.created_after, datetime(2026, 11, 20, 8, tzinfo=UTC)), (w, None)]
    hourly = plan(where, marks, hourly=True)
    assert hourly is not None and hourly.days is None and hourly.hours == [(split.rolled[0], w)]
    # Nothing whole below the watermark: all raw.
    assert (
        plan(dataclasses.replace(where, created_after=w - timedelta(minutes=5)), marks, hourly=False) is None
    )
    assert plan(where, Watermarks(None, None), hourly=False) is None


async def test_activity_answers_from_the_generations_when_the_rollup_cannot_catch_up(ledger: Ledger):
    records, keys = await _seed(ledger)
    async with ledger.engine.begin() as connection:
        await connection.execute(text("DROP TABLE activity_rollup_state"))
    await _check(ledger, records, {}, keys)


async def test_a_sparse_ledger_is_caught_up_across_its_quiet_days_exactly(ledger: Ledger):
    """Two years with activity on a few days only: the catch-up jumps the quiet stretches (it
    took a step a day, seconds on a test's ledger) and the sums stay exact, adjustments too."""
    key = (await ledger.keys.create("sparse"))[0].id
    ages = [
        timedelta(days=730, hours=5),
        timedelta(days=400),
        timedelta(days=399, hours=23),
        timedelta(days=3),
    ]
    records = [
        contract.record(key, 0, created_at=NOW - age, charge_pico=BIG + i, total_cost_pico=BIG + i)
        for i, age in enumerate(ages)
    ]
    for generation in records:
        await ledger.generations.record(generation)
    # Written in a quiet stretch, of a generation made long before it.
    await ledger.generations.adjust([_adjust(records[0], -BIG // 5, 2, NOW - timedelta(days=200))])
    adjusted = {records[0].id: -BIG // 5}
    marks = await ledger.generations.rollup.catch_up()
    assert marks.hours is not None and marks.hours > NOW - timedelta(days=1)
    for group_by in [(DAY,), (DAY, KEY), ()]:
        rows = await ledger.generations.activity(GenerationFilter(), group_by)
        assert sorted((_sums(r) for r in rows), key=_order) == _expected(
            records, adjusted, GenerationFilter(), group_by
        )


def _spread(key: str, days: int) -> list[Generation]:
    """A generation on each of ``days`` past days: as many catch-up steps."""
    return [
        contract.record(key, 0, created_at=NOW - timedelta(days=day, hours=1), charge_pico=BIG + day)
        for day in range(1, days + 1)
    ]


async def test_a_read_takes_a_few_steps_of_a_long_catch_up_and_answers_exactly(ledger: Ledger):
    key = (await ledger.keys.create("steps"))[0].id
    records = _spread(key, 12)
    for generation in records:
        await ledger.generations.record(generation)
    for group_by in [(DAY,), ()]:
        rows = await ledger.generations.activity(GenerationFilter(), group_by)
        expected = _expected(records, {}, GenerationFilter(), group_by)
        assert sorted((_sums(r) for r in rows), key=_order) == expected
    rollup = ledger.generations.rollup
    partial = await rollup.catch_up(max_steps=0)
    assert partial.hours is not None and partial.hours < NOW - timedelta(days=5)  # reads did not finish it
    whole = await rollup.catch_up()
    assert whole.hours is not None and whole.hours >= NOW - rollup.grace - timedelta(hours=1)


async def test_a_read_never_waits_for_a_catch_up_under_way(ledger: Ledger):
    key = (await ledger.keys.create("busy"))[0].id
    records = _spread(key, 3)
    for generation in records:
        await ledger.generations.record(generation)
    rollup = ledger.generations.rollup
    async with rollup._catching_up:  # another task of this process is catching up
        rows = await asyncio.wait_for(ledger.generations.activity(GenerationFilter(), (DAY,)), 10)
    assert sorted((_sums(r) for r in rows), key=_order) == _expected(records, {}, GenerationFilter(), (DAY,))
    assert (await rollup.catch_up(max_steps=0)).hours is None  # the read took no step
