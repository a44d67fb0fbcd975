"""The storage protocols' contract, held by every implementation: SQLite, PostgreSQL and the
in-memory stores of the in-process tier (so that tier cannot drift from the real ledger)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from genledger.core.generation import Generation
from genledger.core.ids import new_generation_id
from genledger.core.keys import KeyExists, Refusal
from genledger.core.stores import PeriodStarts, PeriodUsage
from tests.ledger.conftest import Stores
from tests.ledger.records import hold


def generation(key_id: str, charge: int, created_at: datetime | None = None) -> Generation:
    return Generation(
        id=new_generation_id(),
        key_id=key_id,
        created_at=created_at or datetime.now(UTC),
        model="m",
        total_cost_pico=charge,
        charge_pico=charge,
    )


async def test_names_are_unique_on_create_and_on_rename(stores: Stores):
    alice, _ = await stores.keys.create("alice")
    await stores.keys.create("bob")
    with pytest.raises(KeyExists):
        await stores.keys.create("alice")
    with pytest.raises(KeyExists):
        await stores.keys.update(alice.hash, name="bob")
    with pytest.raises(ValueError, match="usage_pico"):
        await stores.keys.update(alice.hash, usage_pico=0)
    assert await stores.keys.update("no-such-hash", label="x") is None
    assert [k.name for k in await stores.keys.list()] == ["alice", "bob"]


async def test_a_reservation_never_lets_usage_and_reservations_pass_the_limit(stores: Stores):
    key, _ = await stores.keys.create("limited", limit_pico=100)
    settled = generation(key.id, 30)
    assert await stores.keys.reserve(key.id, 60, None, hold(settled.id)) is None
    assert await stores.keys.reserve(key.id, 50, None, hold()) is Refusal.IN_FLIGHT_BUDGET
    assert await stores.keys.reserve(key.id, 101, None, hold()) is Refusal.KEY_LIMIT
    await stores.generations.record(settled, reserved=True)
    state = await stores.keys.find_by_id(key.id)
    assert (state.usage_pico, state.reserved_pico) == (30, 0)
    assert await stores.keys.reserve(key.id, 71, None, hold()) is Refusal.KEY_LIMIT
    released = hold()
    assert await stores.keys.reserve(key.id, 70, None, released) is None
    await stores.keys.release(released.id)
    await stores.keys.release(released.id)  # once only
    assert (await stores.keys.find_by_id(key.id)).reserved_pico == 0
    assert await stores.keys.held(key.id) == ()


async def test_a_new_period_starts_the_limited_usage_over(stores: Stores):
    key, _ = await stores.keys.create("daily", limit_pico=100, limit_reset="daily")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = generation(key.id, 90)
    assert await stores.keys.reserve(key.id, 90, today, hold(first.id)) is None
    await stores.generations.record(first, reserved=True)
    assert await stores.keys.reserve(key.id, 20, today, hold()) is Refusal.KEY_LIMIT
    assert await stores.keys.reserve(key.id, 20, today + timedelta(days=1), hold()) is None
    state = await stores.keys.find_by_id(key.id)
    assert (state.usage_pico, state.period_usage_pico, state.reserved_pico) == (90, 0, 20)


async def test_expired_leases_are_given_back_once_and_live_ones_are_kept(stores: Stores):
    key, _ = await stores.keys.create("leased", limit_pico=1_000)
    now = datetime.now(UTC)
    dead = [hold(owner="dead", lease_s=-1) for _ in range(2)]
    alive = hold(owner="alive", lease_s=-1)  # expired too, until its owner renews it
    for h in (*dead, alive):
        assert await stores.keys.reserve(key.id, 100, None, h) is None
    assert await stores.keys.renew("alive", now + timedelta(seconds=60)) == 1
    assert await stores.keys.reclaim(expired_before=now) == 2
    assert await stores.keys.reclaim(expired_before=now) == 0  # given back once
    assert await stores.keys.held(key.id) == ((alive.id, "alive", 100),)
    assert (await stores.keys.find_by_id(key.id)).reserved_pico == 100
    # A record of a request whose reservation was reclaimed charges it, and releases nothing more.
    late = dataclasses.replace(generation(key.id, 40), id=dead[0].id)
    await stores.generations.record(late, reserved=True)
    state = await stores.keys.find_by_id(key.id)
    assert (state.usage_pico, state.reserved_pico) == (40, 100)
    assert await stores.keys.reclaim(owner="alive") == 1  # a shutdown gives back all it holds
    assert (await stores.keys.find_by_id(key.id)).reserved_pico == 0


async def test_a_key_expires_when_told_and_never_by_default(stores: Stores):
    ends = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    key, _ = await stores.keys.create("ending", expires_at=ends)
    assert (await stores.keys.find_by_id(key.id)).expires_at == ends
    assert key.expired(ends) and not key.expired(ends - timedelta(seconds=1))
    forever, _ = await stores.keys.create("forever")
    assert forever.expires_at is None and not forever.expired(datetime.max.replace(tzinfo=UTC))
    updated = await stores.keys.update(forever.hash, expires_at=ends)
    assert updated is not None and updated.expires_at == ends
    cleared = await stores.keys.update(forever.hash, expires_at=None)
    assert cleared is not None and cleared.expires_at is None


async def test_a_generation_is_read_only_by_its_owner(stores: Stores):
    alice, _ = await stores.keys.create("alice")
    bob, _ = await stores.keys.create("bob")
    record = generation(alice.id, 5)
    await stores.generations.record(record)
    assert await stores.generations.get(record.id, alice.id) == record
    assert await stores.generations.get(record.id, bob.id) is None
    assert await stores.generations.lookup(record.id) == record


async def test_usage_in_periods_sums_each_keys_day_week_and_month_in_one_call(stores: Stores):
    alice, _ = await stores.keys.create("alice")
    bob, _ = await stores.keys.create("bob")
    idle, _ = await stores.keys.create("idle")
    day = datetime(2026, 11, 26, tzinfo=UTC)  # a Thursday
    starts = PeriodStarts(day=day, week=day - timedelta(days=3), month=day.replace(day=1))
    for key_id, charge, created in [
        (alice.id, 1, day + timedelta(hours=5)),
        (alice.id, 10, day - timedelta(days=1)),  # this week
        (alice.id, 100, day - timedelta(days=10)),  # this month
        (alice.id, 1000, day - timedelta(days=40)),  # before
        (bob.id, 7, day + timedelta(minutes=1)),
    ]:
        await stores.generations.record(generation(key_id, charge, created))
    usage = await stores.generations.usage_in_periods([alice.id, bob.id, idle.id], starts)
    assert usage == {
        alice.id: PeriodUsage(daily=1, weekly=11, monthly=111),
        bob.id: PeriodUsage(7, 7, 7),
        idle.id: PeriodUsage(0, 0, 0),
    }
    assert await stores.generations.usage_in_periods([], starts) == {}
    assert await stores.generations.usage_by_day(alice.id, day - timedelta(days=1)) == [
        ("2026-11-25", 1, 10),
        ("2026-11-26", 1, 1),
    ]


async def test_last_used_is_each_keys_latest_generation(stores: Stores):
    alice, _ = await stores.keys.create("alice")
    bob, _ = await stores.keys.create("bob")
    idle, _ = await stores.keys.create("idle")
    at = datetime(2026, 11, 26, 12, tzinfo=UTC)
    for key_id, minutes in [(alice.id, 5), (alice.id, 50), (alice.id, 20), (bob.id, 1)]:
        await stores.generations.record(generation(key_id, 1, at + timedelta(minutes=minutes)))
    assert await stores.generations.last_used([alice.id, bob.id, idle.id]) == {
        alice.id: at + timedelta(minutes=50),
        bob.id: at + timedelta(minutes=1),
    }
    assert await stores.generations.last_used([]) == {}
