"""The PostgreSQL writer losing its connection: what the record in the way sees, and the next ones.

The test's own connection (``admin``) does the killing and the reading, so what it reads
does not depend on the ledger's connections, which the kills take away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from genledger.errors import LedgerUnavailable
from genledger.ledger import Ledger
from genledger.ledger.generations import Settlement
from genledger.ledger.postgres_sink import PostgresSink
from genledger.ledger.unavailable import unreachable
from genledger.ledger.writer import BatchWriter
from tests.deadlines import eventually
from tests.ledger.records import generation, hold
from tests.services import postgres_database

# The writer's one statement for a single record (sinks.PostgresSink): how its backend is told apart.
WRITER_QUERY = "WITH recorded AS (INSERT INTO generations%"
DEADLINE_S = 5.0


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def terminate(admin: asyncpg.Connection, condition: str = "true") -> set[int]:
    """Terminate the database's other backends matching ``condition``; return once they have exited."""
    rows = await admin.fetch(
        "SELECT pid, pg_terminate_backend(pid, 5000) AS gone FROM pg_stat_activity "
        f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND {condition}"
    )
    assert rows and all(row["gone"] for row in rows), rows
    return {row["pid"] for row in rows}


async def writer_pids(admin: asyncpg.Connection) -> set[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1",
        WRITER_QUERY,
    )
    return {row["pid"] for row in rows}


async def key_state(admin: asyncpg.Connection, key_id: str) -> tuple[int, int, int, int]:
    """(usage, reserved, sum of its generations' usage, number of its generations)."""
    row = await admin.fetchrow(
        "SELECT k.usage_pico, k.reserved_pico, "
        "(SELECT coalesce(sum(g.usage_pico), 0) FROM generations g WHERE g.key_id = k.id) AS recorded, "
        "(SELECT count(*) FROM generations g WHERE g.key_id = k.id) AS generations "
        "FROM api_keys k WHERE k.id = $1",
        key_id,
    )
    return row["usage_pico"], row["reserved_pico"], int(row["recorded"]), row["generations"]


async def test_a_connection_killed_while_idle_is_replaced_before_the_next_record(
    ledger: Ledger, admin: asyncpg.Connection
):
    key, _ = await ledger.keys.create("alice", limit_pico=10**15)
    await ledger.generations.record(generation(key.id, charge_pico=100, total_cost_pico=100))
    after = generation(key.id, charge_pico=300, total_cost_pico=300)
    assert await ledger.keys.reserve(key.id, 1_000, None, hold(after.id)) is None
    # Every connection of the ledger goes, as in a restart of PostgreSQL: the writer's and the
    # engine's pooled ones.
    killed = await terminate(admin)
    assert await writer_pids(admin) == set()

    # PostgreSQL tells a session it terminates why, and closes it; pg_terminate_backend waits
    # until the backend has exited, so asyncpg has seen the close by now. The writer's next
    # commit finds its connection closed and opens another: the first record after the kill
    # succeeds, and settles the reservation taken before it.
    async with asyncio.timeout(DEADLINE_S):
        await ledger.generations.record(after, reserved=True)
    assert (await writer_pids(admin)).isdisjoint(killed)
    assert await key_state(admin, key.id) == (400, 0, 400, 2)
    async with asyncio.timeout(DEADLINE_S):
        for usage in (1, 2, 3):
            await ledger.generations.record(generation(key.id, charge_pico=usage, total_cost_pico=usage))
    assert await key_state(admin, key.id) == (406, 0, 406, 5)


async def hold_key_row(admin: asyncpg.Connection, key_id: str) -> asyncpg.transaction.Transaction:
    """Lock the key's row, so that the writer's charge waits on it."""
    transaction = admin.transaction()
    await transaction.start()
    await admin.execute("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", key_id)
    return transaction


async def waiting_on_a_lock(admin: asyncpg.Connection) -> bool:
    return bool(
        await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


async def test_a_record_whose_connection_dies_mid_statement_is_written_again_on_a_new_one(
    ledger: Ledger, admin: asyncpg.Connection
):
    key, _ = await ledger.keys.create("alice", limit_pico=10**15)
    await ledger.generations.record(generation(key.id, charge_pico=100, total_cost_pico=100))
    doomed = generation(key.id, charge_pico=300, total_cost_pico=300)
    assert await ledger.keys.reserve(key.id, 1_000, None, hold(doomed.id)) is None
    lock = await hold_key_row(admin, key.id)
    recording = asyncio.create_task(ledger.generations.record(doomed, reserved=True))
    try:
        assert await eventually(lambda: waiting_on_a_lock(admin), within=DEADLINE_S)
        killed = await terminate(admin, "wait_event_type = 'Lock'")  # the writer, mid-statement
    finally:
        await lock.rollback()
    # Insert and charge are one statement, rolled back whole with the connection; the writer
    # reaches the database again and writes it once: the row, its charge, its reservation back.
    async with asyncio.timeout(DEADLINE_S):
        await recording
    assert await ledger.generations.lookup(doomed.id) == doomed
    assert await key_state(admin, key.id) == (400, 0, 400, 2)
    assert (await writer_pids(admin)).isdisjoint(killed)


async def test_a_record_is_a_503_once_the_database_stays_unreachable():
    """Retried (about three seconds by default), then LedgerUnavailable: a 503 the caller may
    retry, never a 500. Nothing listens on port 1."""
    writer = BatchWriter(
        PostgresSink("postgresql://postgres@127.0.0.1:1/nowhere"), transient=unreachable, retry=(0.01, 0.02)
    )
    writer.start()
    try:
        with pytest.raises(LedgerUnavailable) as caught:
            async with asyncio.timeout(DEADLINE_S):
                await writer.write(Settlement(generation("key-1"), False))
    finally:
        await writer.close()
    assert caught.value.status == 503 and caught.value.headers == {"Retry-After": "1"}
    assert isinstance(caught.value.__cause__, OSError)


async def test_a_batch_whose_connection_dies_is_written_again_row_by_row_on_a_new_one(
    ledger: Ledger, admin: asyncpg.Connection
):
    key, _ = await ledger.keys.create("alice", limit_pico=10**15)
    await ledger.generations.record(generation(key.id, charge_pico=100, total_cost_pico=100))
    batch = [generation(key.id, charge_pico=usage, total_cost_pico=usage) for usage in (10, 20, 30)]
    for record in batch:
        assert await ledger.keys.reserve(key.id, 1_000, None, hold(record.id)) is None
    lock = await hold_key_row(admin, key.id)
    # Queued together while the writer is idle, they are committed as one batch.
    recording = asyncio.gather(*(ledger.generations.record(g, reserved=True) for g in batch))
    try:
        assert await eventually(lambda: waiting_on_a_lock(admin), within=DEADLINE_S)
        await terminate(admin, "wait_event_type = 'Lock'")
    finally:
        await lock.rollback()
    # The batch's transaction is lost with its connection; the writer tries each row again on
    # its own, on a new connection, and every caller succeeds.
    async with asyncio.timeout(DEADLINE_S):
        assert await recording == [None, None, None]
    for record in batch:
        assert await ledger.generations.lookup(record.id) == record
    assert await key_state(admin, key.id) == (160, 0, 160, 4)
