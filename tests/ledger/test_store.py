"""The ledger against real databases: SQLite files and a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite.core
import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.pysqlite import dialect as pysqlite_dialect

from genledger.core.generation import ProviderAttempt
from genledger.core.ids import hash_key
from genledger.ledger import KeyExists, Ledger
from genledger.ledger.engine import DatabaseURLError, async_url, create_engine, migrate
from genledger.ledger.generations import Settlement
from genledger.ledger.postgres_sink import PostgresSink
from genledger.ledger.sinks import RowEncoder, SQLiteSink
from genledger.ledger.writer import Sink
from tests.deadlines import eventually
from tests.ledger.records import generation, hold
from tests.services import postgres_database

DEADLINE_S = 5.0


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        with postgres_database() as url:
            yield url


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


async def test_a_nul_an_upstream_sent_is_recorded_as_a_replacement_character(ledger: Ledger):
    # PostgreSQL's text and JSON cannot hold U+0000: the record failed there, and was lost.
    alice, _ = await ledger.keys.create("alice")
    attempt = ProviderAttempt(status=200, provider_name="Acme", latency_ms=1.0, upstream_id="chatcmpl-\x00x")
    record = generation(alice.id, native_finish_reason="stop\x00", provider_responses=(attempt,))
    await ledger.generations.record(record)
    stored = await ledger.generations.get(record.id, alice.id)
    assert stored is not None
    assert stored.native_finish_reason == "stop\ufffd"
    assert stored.provider_responses[0].upstream_id == "chatcmpl-\ufffdx"
    assert (
        replace(stored, native_finish_reason=record.native_finish_reason, provider_responses=(attempt,))
        == record
    )
    assert (await ledger.keys.find_by_name("alice")).usage_pico == record.charge_pico


async def test_json_documents_read_back_as_written_whatever_they_hold(ledger: Ledger):
    # Written by orjson; a literal backslash-u0000 is text, not a NUL.
    alice, _ = await ledger.keys.create("alice")
    odd = {"escaped": "a\\u0000b", "nul": "x\x00y", "unicode": "h\u00e9 \u2603 \U0001f600", "q": '"{}'}
    record = generation(alice.id, metadata=odd)
    await ledger.generations.record(record)
    stored = await ledger.generations.get(record.id, alice.id)
    assert stored is not None
    assert stored.metadata == {**odd, "nul": "x\ufffdy"}


@pytest.mark.parametrize("dialect", [pysqlite_dialect(), asyncpg_dialect()], ids=["sqlite", "postgres"])
def test_a_document_orjson_cannot_write_is_written_by_sqlalchemy(dialect) -> None:
    table = Table("t", MetaData(), Column("id", String), Column("doc", JSON))
    encoder = RowEncoder(table, dialect)
    assert encoder.encode({"id": "a", "doc": {"n": 2**70, "s": "\x00"}}) == [
        "a",
        f'{{"n": {2**70}, "s": "\\ufffd"}}',
    ]
    assert encoder.encode({"id": "b", "doc": {"k": ["v"]}}) == ["b", '{"k":["v"]}']
    assert encoder.encode({"id": "c", "doc": None}) == ["c", None]


def test_a_sqlite_sink_binds_none_as_null_without_the_adapter_search(tmp_path) -> None:
    SQLiteSink(f"sqlite:///{tmp_path / 'ledger.db'}")
    # The search ends at the registry (see bind_null_directly) with None itself: still NULL.
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (a, b)")
    connection.execute("INSERT INTO t VALUES (?, ?)", (None, 1))
    assert connection.execute("SELECT a, typeof(a), b FROM t").fetchall() == [(None, "null", 1)]
    connection.close()


async def test_a_sqlite_ledger_that_cannot_be_opened_fails_before_aiosqlite_starts(tmp_path, monkeypatch):
    # aiosqlite's thread for a connection that failed to open outlives the event loop of a
    # short program (the CLI) and complains at its exit: none may be started.
    started = []
    worker = aiosqlite.core._connection_worker_thread

    def counted(tx: object) -> None:
        started.append(tx)
        worker(tx)

    monkeypatch.setattr(aiosqlite.core, "_connection_worker_thread", counted)
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'ledger.db'}"
    with pytest.raises(OSError, match="unable to open database file"):
        await Ledger.open(url)
    assert started == []


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
    holds = [hold() for _ in range(100)]
    results = await asyncio.gather(*(ledger.keys.reserve(key.id, 30, None, h) for h in holds))
    assert sum(r is None for r in results) == 33
    assert (await ledger.keys.find_by_id(key.id)).reserved_pico == 990
    assert len(await ledger.keys.held(key.id)) == 33  # a row per reservation made, none per refusal
    # With 10 left but 990 held in flight, a request for 30 waits on the in-flight budget;
    # one that could never fit is over the key's limit.
    assert (await ledger.keys.reserve(key.id, 30, None, hold())).value == "in_flight_budget"
    assert (await ledger.keys.reserve(key.id, 2_000, None, hold())).value == "key_limit"
    for h, result in zip(holds, results, strict=True):
        if result is None:
            await ledger.keys.release(h.id)
    assert (await ledger.keys.find_by_id(key.id)).reserved_pico == 0
    assert await ledger.keys.held(key.id) == ()


async def test_settlement_charges_the_cost_and_releases_the_reservation(ledger: Ledger):
    key, _ = await ledger.keys.create("settle", limit_pico=1_000)
    settled = generation(key.id, charge_pico=250, total_cost_pico=250)
    assert await ledger.keys.reserve(key.id, 400, None, hold(settled.id)) is None
    await ledger.generations.record(settled, reserved=True)
    state = await ledger.keys.find_by_id(key.id)
    assert (state.usage_pico, state.reserved_pico) == (250, 0)


async def test_a_new_period_resets_what_the_limit_counts(ledger: Ledger):
    from datetime import timedelta

    key, _ = await ledger.keys.create("daily", limit_pico=100, limit_reset="daily")
    day1 = datetime(2026, 1, 1, tzinfo=UTC)
    first = generation(key.id, charge_pico=100, total_cost_pico=100)
    assert await ledger.keys.reserve(key.id, 100, day1, hold(first.id)) is None
    await ledger.generations.record(first, reserved=True)
    assert (await ledger.keys.reserve(key.id, 1, day1, hold())).value == "key_limit"
    # The next day the period's usage starts from zero; lifetime usage is kept.
    assert await ledger.keys.reserve(key.id, 100, day1 + timedelta(days=1), hold()) is None
    state = await ledger.keys.find_by_id(key.id)
    assert state.period_usage_pico == 0 and state.usage_pico == 100 and state.reserved_pico == 100
    # A late request still stamped with the old period does not reset it again: the new
    # period's credit is all held in flight.
    assert (await ledger.keys.reserve(key.id, 1, day1, hold())).value == "in_flight_budget"
    assert (await ledger.keys.find_by_id(key.id)).period_start == day1 + timedelta(days=1)


async def test_a_limit_without_reset_counts_all_usage(ledger: Ledger):
    key, _ = await ledger.keys.create("lifetime", limit_pico=100)
    await ledger.generations.record(generation(key.id, charge_pico=90, total_cost_pico=90))
    assert (await ledger.keys.reserve(key.id, 20, None, hold())).value == "key_limit"
    assert await ledger.keys.reserve(key.id, 10, None, hold()) is None


async def test_update_and_delete(ledger: Ledger):
    key, _ = await ledger.keys.create("k")
    updated = await ledger.keys.update(key.hash, limit_pico=5, limit_reset="weekly", requests_per_minute=3)
    assert (updated.limit_pico, updated.limit_reset, updated.requests_per_minute) == (5, "weekly", 3)
    with pytest.raises(ValueError):
        await ledger.keys.update(key.hash, usage_pico=0)
    assert await ledger.keys.update("0" * 64, limit_pico=1) is None
    assert await ledger.keys.delete(key.hash)
    assert await ledger.keys.find_by_hash(key.hash) is None


class WatchedSink:
    """The ledger's own sink, telling the test when a commit starts and ends (held if asked)."""

    def __init__(self, sink: Sink[Settlement], *, hold: bool) -> None:
        self._sink = sink
        self.committing = asyncio.Event()
        self.release = asyncio.Event()
        self.written: set[str] = set()
        self._changed = asyncio.Condition()
        if not hold:
            self.release.set()

    async def commit(self, batch: Sequence[Settlement]) -> None:
        self.committing.set()
        await self.release.wait()
        await self._sink.commit(batch)
        async with self._changed:
            self.written.update(settlement.generation.id for settlement in batch)
            self._changed.notify_all()

    async def wait_written(self, *generation_ids: str) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.written.issuperset(generation_ids))

    async def close(self) -> None:
        await self._sink.close()


async def open_watched(database_url: str, *, hold: bool = False) -> tuple[Ledger, WatchedSink]:
    """What ``Ledger.open`` builds, with the writer's sink watched by the test."""
    engine = create_engine(database_url)
    await migrate(engine)
    own = SQLiteSink(database_url) if engine.dialect.name == "sqlite" else PostgresSink(database_url)
    sink = WatchedSink(own, hold=hold)
    ledger = Ledger(engine, sink)
    ledger.generations.start()
    return ledger, sink


@pytest.mark.parametrize("moment", ["committing", "queued"])
async def test_a_caller_that_goes_away_does_not_take_its_row_with_it(database_url: str, moment: str):
    ledger, sink = await open_watched(database_url, hold=True)
    try:
        alice, _ = await ledger.keys.create("alice")
        first, second = generation(alice.id, charge_pico=1), generation(alice.id, charge_pico=2)
        committing = asyncio.create_task(ledger.generations.record(first))
        async with asyncio.timeout(DEADLINE_S):
            await sink.committing.wait()  # the writer holds `first` in a commit
        queued = asyncio.create_task(ledger.generations.record(second))

        async def second_is_queued() -> bool:
            return any(s.generation.id == second.id for s, _ in ledger.generations._writer._pending)

        assert await eventually(second_is_queued, within=DEADLINE_S)  # behind `first`
        gone, staying = (committing, queued) if moment == "committing" else (queued, committing)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        sink.release.set()
        async with asyncio.timeout(DEADLINE_S):
            await staying
            await sink.wait_written(first.id, second.id)
        for record in (first, second):
            assert await ledger.generations.get(record.id, alice.id) == record
        assert (await ledger.keys.find_by_id(alice.id)).usage_pico == first.charge_pico + second.charge_pico
    finally:
        await ledger.close()


def writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("genledger-ledger")}


async def test_sqlite_writes_wait_in_the_writer_thread_while_another_connection_holds_the_lock(tmp_path):
    ledger, sink = await open_watched(f"sqlite:///{tmp_path}/ledger.db")
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None, check_same_thread=False)
    try:
        alice, _ = await ledger.keys.create("alice")
        other.execute("BEGIN IMMEDIATE")  # someone else holds the write lock
        before = writer_threads()  # a sink's thread starts on first use
        record = generation(alice.id)
        writing = asyncio.create_task(ledger.generations.record(record))
        async with asyncio.timeout(DEADLINE_S):
            await sink.committing.wait()
            # The commit has begun and cannot end while the lock is held, yet this coroutine
            # runs and the ledger serves a read: the write waits in the writer thread, not on
            # the event loop (had it waited on the loop, this would run only once that wait ended).
            assert await ledger.keys.find_by_id(alice.id) == alice
        assert writer_threads() - before, "the write did not go to the writer thread"
        assert not writing.done()
        other.execute("COMMIT")
        async with asyncio.timeout(DEADLINE_S):
            await writing
        assert await ledger.generations.get(record.id, alice.id) == record
    finally:
        other.close()
        await ledger.close()


@contextlib.asynccontextmanager
async def sqlite_ledger(
    path: Path, *, checkpoint_every: int = SQLiteSink.CHECKPOINT_EVERY
) -> AsyncIterator[tuple[Ledger, SQLiteSink, str]]:
    """A SQLite ledger at ``path``, its sink checkpointing every ``checkpoint_every`` rows, and a key's id."""
    ledger = await Ledger.open(f"sqlite:///{path}")
    try:
        sink = ledger.generations._writer._sink
        assert isinstance(sink, SQLiteSink)
        sink.CHECKPOINT_EVERY = checkpoint_every
        alice, _ = await ledger.keys.create("alice")
        yield ledger, sink, alice.id
    finally:
        await ledger.close()


async def test_sqlite_checkpoints_keep_the_wal_from_growing(tmp_path):
    path = tmp_path / "ledger.db"
    async with sqlite_ledger(path, checkpoint_every=50) as (ledger, sink, key_id):
        wal = path.with_name(path.name + "-wal")
        sizes = []
        for _ in range(4):
            for _ in range(1000):
                await ledger.generations.record(generation(key_id))
            sizes.append(wal.stat().st_size)
        # Without checkpoints the WAL holds every page written (about 20 kB a record here):
        # it would grow by the same amount every thousand records, to about 80 MB. It starts
        # over instead, so its file stays at the most it held at once: the 50 records between
        # checkpoints and those committed while one copied, at most 50 more (1.5-2.6 MB here).
        assert sizes[3] < 8 * 1024 * 1024, sizes
        # Records committed after the last checkpoint began may still be in the WAL: write until
        # the next one begins, and wait for it with no record after it. It restarts the WAL, so
        # the next commit is at its start.
        last = sink._checkpoint
        while sink._checkpoint is last:
            await ledger.generations.record(generation(key_id))
        await sink._checkpoint
        await ledger.generations.record(generation(key_id))
        with contextlib.closing(sqlite3.connect(path)) as other:
            _, frames, _ = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames < 100, frames  # one commit's pages, not 4,000 records' (about 20,000)


async def test_sqlite_checkpoints_count_rows_not_commits(tmp_path):
    # Under load a commit carries tens of rows: counted by commits, the WAL between two
    # checkpoints grew as large as the batches, and so did the pause a checkpoint's end makes.
    async with sqlite_ledger(tmp_path / "ledger.db", checkpoint_every=50) as (ledger, sink, key_id):
        commits = 0
        commit = sink.commit

        async def counted(batch: Sequence[Settlement]) -> None:
            nonlocal commits
            commits += 1
            await commit(batch)

        sink.commit = counted  # type: ignore[method-assign]
        await asyncio.gather(*(ledger.generations.record(generation(key_id)) for _ in range(60)))
        assert commits < 50  # the rows went in a few batches (one, here)...
        assert sink._checkpoint is not None  # ...and their number began a checkpoint
        await sink._checkpoint


@dataclass
class SlowCheckpoint:
    """A SQLite ledger whose writer thread is busy with a checkpoint's long copy until ``copying``."""

    ledger: Ledger
    sink: SQLiteSink
    key_id: str
    copying: threading.Event

    def record(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.ledger.generations.record(generation(self.key_id)))


@pytest.fixture
async def slow_checkpoint(tmp_path) -> AsyncIterator[SlowCheckpoint]:
    copying = threading.Event()
    async with sqlite_ledger(tmp_path / "ledger.db") as (ledger, sink, key_id):
        try:
            await ledger.generations.record(generation(key_id))  # the sink's connections are open
            loop = asyncio.get_running_loop()
            sink._checkpoint = loop.run_in_executor(sink._thread, copying.wait, DEADLINE_S)
            sink._checkpoint_began = sink._rows
            yield SlowCheckpoint(ledger, sink, key_id, copying)
        finally:
            copying.set()


async def test_sqlite_commits_go_on_while_a_checkpoint_copies_and_wait_only_for_its_restart(
    slow_checkpoint: SlowCheckpoint,
):
    ledger, sink = slow_checkpoint.ledger, slow_checkpoint.sink
    during = generation(slow_checkpoint.key_id)
    async with asyncio.timeout(DEADLINE_S / 2):
        await ledger.generations.record(during)  # committed meanwhile, on the loop
    assert sink._checkpoint is not None and not sink._checkpoint.done()
    # Its last step, the RESTART, holds the write lock: a commit then queues behind it.
    sink._restarting = True
    after = slow_checkpoint.record()
    await asyncio.sleep(0.2)
    assert not after.done()
    sink._restarting = False
    slow_checkpoint.copying.set()
    async with asyncio.timeout(DEADLINE_S):
        await after
    assert await ledger.generations.get(during.id, slow_checkpoint.key_id) == during


async def test_sqlite_commits_wait_for_a_checkpoint_that_falls_behind(slow_checkpoint: SlowCheckpoint):
    slow_checkpoint.sink.CHECKPOINT_EVERY = 5
    async with asyncio.timeout(DEADLINE_S / 2):
        for _ in range(5):  # as many commits as between two checkpoints go on meanwhile...
            await slow_checkpoint.record()
    late = slow_checkpoint.record()
    await asyncio.sleep(0.2)
    assert not late.done()  # ...then the WAL has held enough: writes wait for the checkpoint
    slow_checkpoint.copying.set()
    async with asyncio.timeout(DEADLINE_S):
        await late
