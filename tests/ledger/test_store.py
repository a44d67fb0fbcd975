"""The ledger against real databases: SQLite files and a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import hash_key, new_generation_id
from genledger.ledger import KeyExists, Ledger
from genledger.ledger.engine import DatabaseURLError, async_url
from tests.services import postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    ledger = await Ledger.open(database_url)
    try:
        yield ledger
    finally:
        await ledger.close()


def generation(key_id: str, **fields) -> Generation:
    base = Generation(
        id=new_generation_id(),
        key_id=key_id,
        created_at=datetime.now(UTC),
        model="acme/fast-chat",
        provider_name="FakeAI",
        total_cost_pico=123_456_789,
        charge_pico=123_456_789,
        cache_discount_pico=0,
        streamed=True,
        cancelled=False,
        latency_ms=12.5,
        tokens_prompt=10,
        tokens_completion=20,
        provider_responses=(ProviderAttempt(status=200, provider_name="FakeAI", latency_ms=3.0),),
    )
    return replace(base, **fields)


async def test_keys_are_stored_by_hash_only(ledger: Ledger):
    key, secret = await ledger.keys.create("alice", limit_pico=5_000_000)
    assert key.hash == hash_key(secret) and secret not in repr(key)
    found = await ledger.keys.find_by_hash(hash_key(secret))
    assert found == key
    assert await ledger.keys.find_by_hash(hash_key("sk-gl-v1-other")) is None
    with pytest.raises(KeyExists):
        await ledger.keys.create("alice")
    assert [k.name for k in await ledger.keys.list()] == ["alice"]


async def test_disable_and_rotate(ledger: Ledger):
    key, secret = await ledger.keys.create("demo")
    assert await ledger.keys.set_disabled("demo")
    assert (await ledger.keys.find_by_hash(key.hash)).disabled
    assert not await ledger.keys.set_disabled("nobody")
    rotated, new_secret = await ledger.keys.rotate("demo")
    assert new_secret != secret and rotated.id == key.id and not rotated.disabled
    assert await ledger.keys.find_by_hash(key.hash) is None
    assert await ledger.keys.rotate("nobody") is None


async def test_a_generation_round_trips_exactly_and_only_for_its_owner(ledger: Ledger):
    alice, _ = await ledger.keys.create("alice")
    bob, _ = await ledger.keys.create("bob")
    record = generation(alice.id, external_user="u", http_referer="https://x", origin="https://x")
    await ledger.generations.record(record)
    assert await ledger.generations.get(record.id, alice.id) == record
    assert await ledger.generations.get(record.id, bob.id) is None
    assert await ledger.generations.lookup(record.id) == record
    # The key is charged exactly what the generation cost.
    assert (await ledger.keys.find_by_name("alice")).usage_pico == record.charge_pico


async def test_concurrent_writes_are_all_committed_and_charged(ledger: Ledger):
    alice, _ = await ledger.keys.create("alice")
    records = [generation(alice.id, charge_pico=i, total_cost_pico=i) for i in range(1, 201)]
    await asyncio.gather(*(ledger.generations.record(r) for r in records))
    for r in records[::20]:
        assert await ledger.generations.get(r.id, alice.id) == r
    assert (await ledger.keys.find_by_name("alice")).usage_pico == sum(range(1, 201))


async def test_one_bad_row_does_not_fail_its_batch(ledger: Ledger):
    alice, _ = await ledger.keys.create("alice")
    first = generation(alice.id)
    await ledger.generations.record(first)
    good = [generation(alice.id) for _ in range(5)]
    duplicate = replace(first, charge_pico=1)
    results = await asyncio.gather(
        *(ledger.generations.record(r) for r in [*good, duplicate]), return_exceptions=True
    )
    assert all(r is None for r in results[:5])
    assert isinstance(results[5], Exception)
    for r in good:
        assert await ledger.generations.get(r.id, alice.id) == r


async def test_reopening_keeps_everything(database_url: str):
    ledger = await Ledger.open(database_url)
    key, _ = await ledger.keys.create("alice")
    record = generation(key.id)
    await ledger.generations.record(record)
    await ledger.close()
    again = await Ledger.open(database_url)  # migrations are idempotent
    try:
        assert await again.generations.get(record.id, key.id) == record
    finally:
        await again.close()


def test_database_urls():
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(DatabaseURLError):
        async_url("mysql://u@h/db")
    with pytest.raises(DatabaseURLError):
        async_url("not a url")


async def test_reservations_never_exceed_the_limit_under_concurrency(ledger: Ledger):
    key, _ = await ledger.keys.create("capped", limit_pico=1_000)
    results = await asyncio.gather(*(ledger.keys.reserve(key.id, 30, None) for _ in range(100)))
    assert sum(r is None for r in results) == 33
    assert (await ledger.keys.find_by_id(key.id)).reserved_pico == 990
    # With 10 left but 990 held in flight, a request for 30 waits on the in-flight budget;
    # one that could never fit is over the key's limit.
    assert (await ledger.keys.reserve(key.id, 30, None)).value == "in_flight_budget"
    assert (await ledger.keys.reserve(key.id, 2_000, None)).value == "key_limit"
    await ledger.keys.release(key.id, 990)
    assert (await ledger.keys.find_by_id(key.id)).reserved_pico == 0


async def test_settlement_charges_the_cost_and_releases_the_reservation(ledger: Ledger):
    key, _ = await ledger.keys.create("settle", limit_pico=1_000)
    assert await ledger.keys.reserve(key.id, 400, None) is None
    await ledger.generations.record(generation(key.id, charge_pico=250, total_cost_pico=250), reserved=400)
    state = await ledger.keys.find_by_id(key.id)
    assert (state.usage_pico, state.reserved_pico) == (250, 0)


async def test_a_new_period_resets_what_the_limit_counts(ledger: Ledger):
    from datetime import timedelta

    key, _ = await ledger.keys.create("daily", limit_pico=100, limit_reset="daily")
    day1 = datetime(2026, 1, 1, tzinfo=UTC)
    assert await ledger.keys.reserve(key.id, 100, day1) is None
    await ledger.generations.record(generation(key.id, charge_pico=100, total_cost_pico=100), reserved=100)
    assert (await ledger.keys.reserve(key.id, 1, day1)).value == "key_limit"
    # The next day the period's usage starts from zero; lifetime usage is kept.
    assert await ledger.keys.reserve(key.id, 100, day1 + timedelta(days=1)) is None
    state = await ledger.keys.find_by_id(key.id)
    assert state.period_usage_pico == 0 and state.usage_pico == 100 and state.reserved_pico == 100
    # A late request still stamped with the old period does not reset it again: the new
    # period's credit is all held in flight.
    assert (await ledger.keys.reserve(key.id, 1, day1)).value == "in_flight_budget"
    assert (await ledger.keys.find_by_id(key.id)).period_start == day1 + timedelta(days=1)


async def test_a_limit_without_reset_counts_all_usage(ledger: Ledger):
    key, _ = await ledger.keys.create("lifetime", limit_pico=100)
    await ledger.generations.record(generation(key.id, charge_pico=90, total_cost_pico=90))
    assert (await ledger.keys.reserve(key.id, 20, None)).value == "key_limit"
    assert await ledger.keys.reserve(key.id, 10, None) is None


async def test_update_and_delete(ledger: Ledger):
    key, _ = await ledger.keys.create("k")
    updated = await ledger.keys.update(key.hash, limit_pico=5, limit_reset="weekly", requests_per_minute=3)
    assert (updated.limit_pico, updated.limit_reset, updated.requests_per_minute) == (5, "weekly", 3)
    with pytest.raises(ValueError):
        await ledger.keys.update(key.hash, usage_pico=0)
    assert await ledger.keys.update("0" * 64, limit_pico=1) is None
    assert await ledger.keys.delete(key.hash)
    assert await ledger.keys.find_by_hash(key.hash) is None


async def test_a_caller_that_goes_away_does_not_take_its_row_with_it(ledger: Ledger):
    alice, _ = await ledger.keys.create("alice")
    record = generation(alice.id)
    waiting = asyncio.create_task(ledger.generations.record(record))
    await asyncio.sleep(0)  # queued
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for _ in range(100):
        if await ledger.generations.get(record.id, alice.id) is not None:
            break
        await asyncio.sleep(0.01)
    assert await ledger.generations.get(record.id, alice.id) == record


async def test_sqlite_writes_wait_in_the_writer_thread_while_another_connection_holds_the_lock(tmp_path):
    import sqlite3
    import time

    ledger = await Ledger.open(f"sqlite:///{tmp_path}/ledger.db")
    try:
        alice, _ = await ledger.keys.create("alice")
        other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # someone else holds the write lock
        record = generation(alice.id)
        writing = asyncio.create_task(ledger.generations.record(record))
        # The loop is not blocked while the record waits: this sleep returns on time.
        started = time.perf_counter()
        await asyncio.sleep(0.2)
        assert time.perf_counter() - started < 0.4
        assert not writing.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        assert await ledger.generations.get(record.id, alice.id) == record
        other.close()
    finally:
        await ledger.close()


async def test_sqlite_checkpoints_keep_the_wal_from_growing(tmp_path):
    from genledger.ledger.sinks import SQLiteSink

    path = tmp_path / "ledger.db"
    ledger = await Ledger.open(f"sqlite:///{path}")
    try:
        sink = ledger.generations._writer._sink
        assert isinstance(sink, SQLiteSink)
        sink.CHECKPOINT_EVERY = 50
        alice, _ = await ledger.keys.create("alice")
        wal = path.with_name(path.name + "-wal")
        sizes = []
        for _ in range(3):
            for _ in range(1000):
                await ledger.generations.record(generation(alice.id))
            sizes.append(wal.stat().st_size)
        # Without checkpoints the WAL holds every page written (about 20 kB a record here):
        # it would grow by the same amount every thousand records. It starts over instead.
        assert sizes[2] <= sizes[0] * 1.2, sizes
        assert sizes[2] < 8 * 1024 * 1024, sizes
    finally:
        await ledger.close()
