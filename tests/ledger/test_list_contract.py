"""The newest-first list, on every implementation of the store: filters, metadata, keyset pages."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from genledger.core.generation import Generation
from genledger.core.ids import new_generation_id
from genledger.core.stores import Cursor, GenerationFilter
from tests.ledger.conftest import Stores

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(key_id: str, minute: int, **fields) -> Generation:
    base = Generation(
        id=new_generation_id(),
        key_id=key_id,
        created_at=T0 + timedelta(minutes=minute),
        model="acme/chat",
        provider_name="Acme",
        total_cost_pico=1000 * minute,
        charge_pico=1000 * minute,
        finish_reason="stop",
        streamed=False,
        cancelled=False,
    )
    return dataclasses.replace(base, **fields)


@pytest.fixture
async def seeded(stores: Stores) -> tuple[Stores, dict[str, Generation], str, str]:
    alice, _ = await stores.keys.create("alice")
    bob, _ = await stores.keys.create("bob")
    rows = {
        "a1": record(
            alice.id,
            1,
            external_user="u1",
            session_id="s1",
            metadata={"team": "search"},
            upstream_cost_pico=1000,
        ),
        "a2": record(
            alice.id,
            2,
            model="acme/big",
            streamed=True,
            metadata={"team": "ads", "env": "prod"},
            upstream_cost_pico=2600,  # ours: 2000
        ),
        "a3": record(alice.id, 3, finish_reason="error", provider_name="Other", session_id="s1"),
        "a4": record(alice.id, 4, cancelled=True, streamed=True, external_user="u2"),
        "b1": record(bob.id, 2, external_user="u1", metadata={"team": "search", "env": "prod"}),
    }
    for row in rows.values():
        await stores.generations.record(row)
    return stores, rows, alice.id, bob.id


async def names(stores: Stores, rows: dict[str, Generation], where: GenerationFilter) -> list[str]:
    by_id = {row.id: name for name, row in rows.items()}
    page = await stores.generations.list(where, limit=100)
    return [by_id[g.id] for g in page.items]


async def test_each_filter_selects_exactly_its_rows_newest_first(seeded):
    stores, rows, alice, bob = seeded

    def newest_first(*wanted: str) -> list[str]:
        return sorted(wanted, key=lambda n: (rows[n].created_at, rows[n].id), reverse=True)

    cases = {
        GenerationFilter(): newest_first("a1", "a2", "a3", "a4", "b1"),
        GenerationFilter(key_id=alice): ["a4", "a3", "a2", "a1"],
        GenerationFilter(key_id=bob): ["b1"],
        GenerationFilter(created_after=T0 + timedelta(minutes=2)): newest_first("a2", "a3", "a4", "b1"),
        GenerationFilter(created_before=T0 + timedelta(minutes=2)): ["a1"],
        GenerationFilter(model="acme/big"): ["a2"],
        GenerationFilter(provider_name="Other"): ["a3"],
        GenerationFilter(finish_reason="error"): ["a3"],
        GenerationFilter(streamed=True, key_id=alice): ["a4", "a2"],
        GenerationFilter(cancelled=True): ["a4"],
        GenerationFilter(cancelled=False, key_id=alice): ["a3", "a2", "a1"],
        GenerationFilter(external_user="u1", key_id=alice): ["a1"],
        GenerationFilter(session_id="s1"): ["a3", "a1"],
        GenerationFilter(metadata=(("team", "search"),), key_id=alice): ["a1"],
        GenerationFilter(metadata=(("team", "search"), ("env", "prod"))): ["b1"],
        GenerationFilter(metadata=(("env", "dev"),)): [],
        GenerationFilter(min_cost_pico=3000): ["a4", "a3"],
        GenerationFilter(drifted=True): ["a2"],
        GenerationFilter(drifted=True, drift_tolerance_pico=600): [],
        GenerationFilter(drifted=False, key_id=alice): ["a4", "a3", "a1"],
    }
    for where, expected in cases.items():
        assert await names(stores, rows, where) == expected, where


async def test_metadata_and_session_round_trip(seeded):
    stores, rows, alice, _ = seeded
    found = await stores.generations.get(rows["a2"].id, alice)
    assert found is not None and found.metadata == {"team": "ads", "env": "prod"}
    assert (await stores.generations.get(rows["a1"].id, alice)).session_id == "s1"


# Each walk a store has its own path for: a key's rows, the rare values' partial indexes, and a
# metadata pair's rows (walked from generation_metadata), for one key and for everyone.
WALKS = {
    "key": ({}, {}),
    "errors": ({"finish_reason": "error"}, {"finish_reason": "error"}),
    "cancelled": ({"cancelled": True, "streamed": True}, {"cancelled": True}),
    "metadata": ({"metadata": {"team": "search", "env": "prod"}}, {"metadata": (("team", "search"),)}),
    "metadata, everyone": (
        {"metadata": {"team": "search", "env": "prod"}},
        {"metadata": (("env", "prod"), ("team", "search")), "key_id": None},
    ),
}


@pytest.mark.parametrize("walk", WALKS)
async def test_pages_walk_every_row_once_while_rows_are_written(stores: Stores, walk: str):
    fields, filters = WALKS[walk]
    key, _ = await stores.keys.create("walker")
    where = dataclasses.replace(GenerationFilter(key_id=key.id), **filters)
    for minute in range(25):
        await stores.generations.record(record(key.id, minute, **fields))
        if filters:  # and rows the filter must skip, at the same times
            await stores.generations.record(record(key.id, minute, metadata={"team": "ads"}))
    seen: list[str] = []
    after: Cursor | None = None
    written = 0
    while True:
        page = await stores.generations.list(where, limit=7, after=after)
        seen += [g.id for g in page.items]
        # Newer rows arrive during the walk; they belong before the first page, never in it.
        await stores.generations.record(record(key.id, 100 + written, **fields))
        written += 1
        if page.next is None:
            break
        after = page.next
    assert len(seen) == len(set(seen)) == 25
    found = [await stores.generations.get(generation_id, key.id) for generation_id in seen]
    assert [(g.created_at, g.id) for g in found if g] == sorted(
        ((g.created_at, g.id) for g in found if g), reverse=True
    )
    all_rows = await stores.generations.list(where, limit=1000)
    assert len(all_rows.items) == 25 + written and all_rows.next is None


async def test_records_committed_together_are_found_by_their_metadata(stores: Stores):
    # Concurrent records share a commit (the writer's batch path, not the single-record one).
    key, _ = await stores.keys.create("batched")
    rows = [record(key.id, minute % 3, metadata={"run": str(minute % 2)}) for minute in range(40)]
    await asyncio.gather(*(stores.generations.record(row) for row in rows))
    page = await stores.generations.list(GenerationFilter(metadata=(("run", "1"),)), limit=100)
    assert sorted(g.id for g in page.items) == sorted(row.id for row in rows if row.metadata == {"run": "1"})


async def test_rows_with_the_same_time_are_ordered_by_id_and_never_lost_between_pages(stores: Stores):
    key, _ = await stores.keys.create("ties")
    same = [record(key.id, 5) for _ in range(9)]
    for row in same:
        await stores.generations.record(row)
    seen, after = [], None
    while True:
        page = await stores.generations.list(GenerationFilter(key_id=key.id), limit=2, after=after)
        seen += [g.id for g in page.items]
        if page.next is None:
            break
        after = page.next
    assert seen == sorted((row.id for row in same), reverse=True)
