"""Ledger truth on every store: price versions, adjustments as entries, sealed statements.

Memory, SQLite and PostgreSQL answer alike (the `stores` fixture); usage and activity are the
records' charges plus their adjustments, exactly.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, update

from genledger.config import load_settings
from genledger.core.activity import DAY, MODEL
from genledger.core.generation import Generation
from genledger.core.idempotency import TTL, Claimed, Finished, Mismatch, Running, StoredAnswer
from genledger.core.pricing import Price, cost
from genledger.core.statements import Change
from genledger.core.stores import GenerationFilter
from genledger.core.usage import Usage
from genledger.gateway.keys import period_starts
from genledger.gateway.reprice import reprice
from genledger.gateway.statements import NotClosable, StatementBook
from genledger.ledger.generations import generation_row
from genledger.ledger.schema import generations as generations_table
from tests.ledger import test_list_contract as contract
from tests.ledger.conftest import Stores

MODEL_SLUG = "acme/chat"
WRONG = Price(prompt=Decimal("1"), completion=Decimal("2"))
RIGHT = Price(prompt=Decimal("1.5"), completion=Decimal("2.25"), cached_prompt=Decimal("0.5"))
# Far above 2**53 picodollars: a float anywhere on the way would lose cents.
BIG = 3 * 10**16 + 7


async def rated(
    stores: Stores, key_id: str, at: datetime, usage: Usage, version: int, price: Price
) -> Generation:
    charge = cost(usage, price).total
    g = contract.record(
        key_id,
        0,
        created_at=at,
        model=MODEL_SLUG,
        total_cost_pico=charge,
        charge_pico=charge,
        tokens_prompt=usage.prompt_tokens,
        tokens_completion=usage.completion_tokens,
        native_tokens_cached=usage.cached_tokens,
        price_version=version,
    )
    await stores.generations.record(g)
    return g


async def test_a_price_version_is_new_only_when_the_price_changes(stores: Stores):
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    first = await stores.prices.sync(MODEL_SLUG, WRONG, t0)
    again = await stores.prices.sync(
        MODEL_SLUG, Price(Decimal("1.000"), Decimal("2.0")), t0 + timedelta(hours=1)
    )
    second = await stores.prices.sync(MODEL_SLUG, RIGHT, t0 + timedelta(hours=2))
    assert (first.version, again.version, second.version) == (1, 1, 2)
    history = await stores.prices.history(MODEL_SLUG)
    assert [(v.version, v.effective_at, v.price) for v in history] == [
        (1, t0, WRONG),
        (2, t0 + timedelta(hours=2), RIGHT),
    ]
    assert await stores.prices.history("other/model") == []


async def test_reprice_writes_entries_once_and_usage_and_activity_follow_exactly(stores: Stores):
    key, _ = await stores.keys.create("k")
    now = datetime.now(UTC)
    v1 = await stores.prices.sync(MODEL_SLUG, WRONG, now - timedelta(hours=2))
    old = [
        await rated(
            stores,
            key.id,
            now - timedelta(minutes=30 + i),
            Usage(1000 * i + 7, 333 * i, cached_tokens=i),
            1,
            WRONG,
        )
        for i in range(1, 6)
    ]
    big = await rated(
        stores, key.id, now - timedelta(minutes=20), Usage(2_000_000_000, 2_000_000_000), 1, WRONG
    )
    no_usage = contract.record(
        key.id, 0, created_at=now - timedelta(minutes=10), model=MODEL_SLUG, charge_pico=0
    )
    await stores.generations.record(no_usage)
    other_model = contract.record(key.id, 0, created_at=now - timedelta(minutes=5), model="other/model")
    await stores.generations.record(other_model)
    v2 = await stores.prices.sync(MODEL_SLUG, RIGHT, now - timedelta(minutes=1))
    assert v2.version == v1.version + 1
    since = now - timedelta(days=1)

    dry = await reprice(
        stores.generations, v2, since=since, until=None, reason="typo in prompt price", apply=False
    )
    assert dry.examined == 7
    assert await stores.generations.adjustments_of([g.id for g in old]) == {}
    applied = await reprice(
        stores.generations, v2, since=since, until=None, reason="typo in prompt price", apply=True
    )
    assert [a.amount_pico for a in applied.adjustments] == [a.amount_pico for a in dry.adjustments]
    expected = {
        g.id: cost(
            Usage(g.tokens_prompt or 0, g.tokens_completion or 0, cached_tokens=g.native_tokens_cached or 0),
            RIGHT,
        ).total
        - g.charge_pico
        for g in [*old, big]
    }
    assert {a.generation_id: a.amount_pico for a in applied.adjustments} == expected
    assert all((a.from_version, a.to_version) == (1, 2) for a in applied.adjustments)
    twice = await reprice(stores.generations, v2, since=since, until=None, reason="again", apply=True)
    assert twice.adjustments == []
    assert await stores.generations.adjust(applied.adjustments) == []  # the same entries again: nothing

    records = [*old, big, no_usage, other_model]
    total = sum(g.charge_pico for g in records) + sum(expected.values())
    usage = (await stores.generations.usage_in_periods([key.id], period_starts(now)))[key.id]
    assert usage.monthly == total
    assert sum(count for _, count, _ in await stores.generations.usage_by_day(key.id, since)) == len(records)
    assert sum(u for _, _, u in await stores.generations.usage_by_day(key.id, since)) == total
    rows = await stores.generations.activity(GenerationFilter(key_id=key.id), (MODEL,))
    by_model = {row.group[0]: row.usage_pico for row in rows}
    assert by_model == {
        MODEL_SLUG: sum(g.charge_pico for g in [*old, big, no_usage]) + sum(expected.values()),
        "other/model": other_model.charge_pico,
    }
    assert sum(r.usage_pico for r in await stores.generations.activity(GenerationFilter(), (DAY,))) == total
    fresh = await stores.keys.find_by_id(key.id)
    assert fresh is not None and fresh.usage_pico == total
    # Nothing recorded changed: the generations read back as written.
    assert await stores.generations.get(big.id, key.id) == big


async def test_reprice_needs_a_reason(stores: Stores):
    version = await stores.prices.sync(MODEL_SLUG, RIGHT, datetime.now(UTC))
    with pytest.raises(ValueError, match="reason"):
        await reprice(
            stores.generations, version, since=datetime.now(UTC), until=None, reason=" ", apply=True
        )


DAY1 = date(2026, 11, 2)
T1 = datetime(2026, 11, 2, 9, tzinfo=UTC)


async def day_of_records(stores: Stores) -> list[Generation]:
    key, _ = await stores.keys.create("k")
    records = [
        contract.record(key.id, 0, created_at=T1 + timedelta(hours=i), charge_pico=BIG + i) for i in range(4)
    ]
    records.append(contract.record(key.id, 0, created_at=T1 + timedelta(days=1)))  # the next day
    for g in records:
        await stores.generations.record(g)
    return records


async def tamper(stores: Stores, change: Change, victim: Generation) -> None:
    """Edit the ledger behind the gateway's back, as someone with database access could."""
    if stores.ledger is None:
        kept = stores.generations.generations  # type: ignore[attr-defined]
        if change is Change.CHANGED:
            kept[victim.id] = dataclasses.replace(victim, charge_pico=victim.charge_pico - 1)
        elif change is Change.REMOVED:
            del kept[victim.id]
        else:
            kept[victim.id] = victim
        return
    async with stores.ledger.engine.begin() as connection:
        if change is Change.CHANGED:
            await connection.execute(
                update(generations_table).where(generations_table.c.id == victim.id).values(usage_pico=1)
            )
        elif change is Change.REMOVED:
            await connection.execute(delete(generations_table).where(generations_table.c.id == victim.id))
        else:
            await connection.execute(insert(generations_table).values(generation_row(victim)))


@pytest.mark.parametrize("change", list(Change))
async def test_verify_names_a_record_changed_added_or_removed_after_close(stores: Stores, change: Change):
    records = await day_of_records(stores)
    book = StatementBook(stores.generations, stores.statements)
    with pytest.raises(NotClosable, match="grace"):
        await book.close(DAY1, grace=timedelta(minutes=10), now=datetime(2026, 11, 3, 0, 5, tzinfo=UTC))
    statement = await book.close(
        DAY1, grace=timedelta(minutes=10), now=datetime(2026, 11, 3, 0, 11, tzinfo=UTC)
    )
    assert statement.record_count == 4
    assert [(t.requests, t.usage_pico) for t in statement.totals] == [(4, 4 * BIG + 6)]
    with pytest.raises(NotClosable, match="closed already"):
        await book.close(DAY1, grace=timedelta(0))
    second = await book.close(DAY1 + timedelta(days=1), grace=timedelta(0))
    assert second.previous_hash == statement.hash
    closed, problems = await book.verify()
    assert [s.day for s in closed] == [DAY1, DAY1 + timedelta(days=1)] and problems == []
    assert [s.hash for s in await stores.statements.statements()] == [statement.hash, second.hash]

    victim = records[1]
    if change is Change.ADDED:
        victim = contract.record(records[0].key_id, 0, created_at=T1 + timedelta(minutes=1))
    await tamper(stores, change, victim)
    _, problems = await book.verify()
    assert [(p.day, p.change, p.entry_id) for p in problems] == [(DAY1, change, f"generation:{victim.id}")]


async def test_an_idempotency_claim_runs_once_keeps_its_answer_and_expires(stores: Stores):
    store = stores.idempotency
    lease = timedelta(minutes=30)
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert isinstance(await store.claim("k1", "retry-1", "body-a", t0, lease), Claimed)
    assert isinstance(await store.claim("k1", "retry-1", "body-a", t0, lease), Running)
    assert isinstance(await store.claim("k1", "retry-1", "body-b", t0, lease), Mismatch)
    assert isinstance(await store.claim("k2", "retry-1", "body-b", t0, lease), Claimed)  # per API key
    answer = StoredAnswer(200, "text/event-stream", b"data: [DONE]\n\n" * 3)
    await store.finish("k1", "retry-1", answer)
    await store.release("k1", "retry-1")  # a finished claim is not given up
    later = t0 + TTL - timedelta(seconds=1)
    assert await store.claim("k1", "retry-1", "body-a", later, lease) == Finished(answer)
    expired = t0 + TTL + timedelta(seconds=1)
    assert isinstance(await store.claim("k1", "retry-1", "body-b", expired, lease), Claimed)
    # A running claim is released by its call's failure, or taken over once its lease ends.
    await store.release("k2", "retry-1")
    assert isinstance(await store.claim("k2", "retry-1", "body-c", t0, lease), Claimed)
    within = t0 + lease - timedelta(seconds=1)
    assert isinstance(await store.claim("k2", "retry-1", "body-c", within, lease), Running)
    past = t0 + lease + timedelta(seconds=1)
    assert isinstance(await store.claim("k2", "retry-1", "body-c", past, lease), Claimed)
    await store.finish("k2", "retry-1", StoredAnswer(200, "application/json", None))
    assert await store.claim("k2", "retry-1", "body-c", t0 + lease * 2, lease) == Finished(
        StoredAnswer(200, "application/json", None)
    )


async def test_a_running_claim_holds_as_long_as_its_call_may_run(stores: Stores):
    """A stream may run ``total_timeout`` and then its ``stream_timeout`` (about 20 minutes by
    default); a lease of a fixed 10 minutes let a retry run, and be charged, a second time
    while the first still streamed."""
    store = stores.idempotency
    settings = load_settings(None)
    lease = timedelta(seconds=settings.longest_call)
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert isinstance(await store.claim("k1", "slow", "body", t0, lease), Claimed)
    longest = settings.routing.total_timeout + settings.providers["demo"].stream_timeout
    still = t0 + timedelta(seconds=longest)
    assert still - t0 > timedelta(minutes=10)
    assert isinstance(await store.claim("k1", "slow", "body", still, lease), Running)
    past = t0 + lease + timedelta(seconds=1)
    assert isinstance(await store.claim("k1", "slow", "body", past, lease), Claimed)
