"""Migrations that fail: all or nothing, a clear error, and no connection left behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger, MigrationError
from genledger.ledger.engine import _MIGRATIONS, HEAD_REVISION, create_engine
from tests.deadlines import eventually
from tests.services import postgres_database

# A table of the ledger's name and another shape, as an older tool or a hand-made schema leaves.
CONFLICTING = "CREATE TABLE generations (id INTEGER PRIMARY KEY, note VARCHAR(20))"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        with postgres_database() as url:
            yield url


async def run(database_url: str, *statements: str) -> None:
    """Run ``statements`` in one transaction on a connection of the test's own."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def tables(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def open_files_under(path: str) -> list[str]:
    """Files this process holds open whose path starts with ``path`` (Linux's /proc)."""
    targets = (os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd"))
    return [target for target in targets if target.startswith(os.path.realpath(path))]


async def assert_nothing_left_open(database_url: str) -> None:
    """No connection of this process to the database is still open."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # The engine's disposal is awaited, so its files are closed by now: nothing to wait for.
        assert open_files_under(url.database or "") == []
        return
    admin = await asyncpg.connect(url.render_as_string(hide_password=False))

    async def others() -> list[asyncpg.Record]:
        return await admin.fetch(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

    async def none_left() -> bool:
        return not await others()

    try:
        # A closed connection's backend exits a moment after the client has closed it.
        assert await eventually(none_left), f"connections left open: {await others()}"
    finally:
        await admin.close()


async def test_a_table_in_the_way_fails_the_migration_and_changes_nothing(database_url: str):
    await run(database_url, CONFLICTING, "INSERT INTO generations (id, note) VALUES (1, 'kept')")
    with pytest.raises(MigrationError, match="generations") as caught:
        await Ledger.open(database_url)
    # One line saying what is in the way, not the SQL of the whole migration.
    assert "\n" not in str(caught.value) and "CREATE TABLE" not in str(caught.value)
    await assert_nothing_left_open(database_url)
    # All or nothing: neither the ledger's other table nor Alembic's version table stays
    # behind (on SQLite too, where each CREATE TABLE would otherwise commit by itself).
    assert await tables(database_url) == {"generations"}
    # So once the table in the way is gone, the ledger opens.
    await run(database_url, "DROP TABLE generations")
    ledger = await Ledger.open(database_url)
    try:
        key, _ = await ledger.keys.create("after")
        assert await ledger.keys.find_by_id(key.id) == key
    finally:
        await ledger.close()


async def test_a_database_at_an_unknown_revision_is_refused(database_url: str):
    ledger = await Ledger.open(database_url)
    await ledger.close()
    # As a newer genledger, with migrations this one does not have, would leave it.
    await run(database_url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MigrationError, match="9999"):
        await Ledger.open(database_url)
    await assert_nothing_left_open(database_url)


def _upgrade_to(revision: str):
    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return upgrade


async def test_a_database_at_the_first_revision_is_upgraded_with_its_keys(database_url: str):
    # 0002 rebuilds api_keys on SQLite (batch mode): that must work inside the one transaction.
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to("0001"))
            await connection.execute(
                text(
                    "INSERT INTO api_keys (id, hash, name, label, is_management, disabled, usage_pico, "
                    "created_at) VALUES ('k1', 'h1', 'old', 'sk-old', false, false, 42, '2026-01-01')"
                )
            )
    finally:
        await engine.dispose()
    ledger = await Ledger.open(database_url)
    try:
        key = await ledger.keys.find_by_id("k1")
        assert key is not None
        assert (key.name, key.usage_pico, key.reserved_pico, key.period_usage_pico) == ("old", 42, 0, 0)
        assert key.requests_per_minute is None and key.tokens_per_minute is None
        assert key.include_byok_in_limit is False  # 0010's column, as keys read it before
    finally:
        await ledger.close()


async def test_instances_opening_a_new_database_together_migrate_it_once(database_url: str):
    ledgers = await asyncio.gather(*(Ledger.open(database_url) for _ in range(4)))
    try:
        keys = [(await ledger.keys.create(f"instance-{i}"))[0] for i, ledger in enumerate(ledgers)]
        assert {key.name for key in await ledgers[0].keys.list()} == {key.name for key in keys}
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_a_ledger_at_0003_gets_its_generations_metadata_pairs(database_url: str):
    # 0004 copies each generation's metadata into generation_metadata, which the list walks.
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to("0003"))
            sqlite = connection.dialect.name == "sqlite"
            for n, metadata in enumerate(('{"team": "search", "env": "prod"}', None, '{"team": "ads"}')):
                at = datetime(2026, 11, 1, n, tzinfo=UTC)
                await connection.execute(
                    text(
                        "INSERT INTO generations (id, key_id, created_at, model, total_cost_pico, "
                        "usage_pico, origin, data_region, metadata, finish_reason, cancelled) "
                        "VALUES (:id, 'k1', :at, 'm', 0, 0, '', 'global', :metadata, 'error', true)"
                    ),
                    # SQLite's column holds SQLAlchemy's text form of the time.
                    {
                        "id": f"gen-{n}",
                        "at": at.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at,
                        "metadata": metadata,
                    },
                )
    finally:
        await engine.dispose()
    ledger = await Ledger.open(database_url)
    try:
        generations = ledger.generations
        search = await generations.list(GenerationFilter(metadata=(("team", "search"),)), limit=10)
        assert [g.id for g in search.items] == ["gen-0"]
        both = await generations.list(GenerationFilter(metadata=(("team", "ads"),), key_id="k1"), limit=10)
        assert [g.id for g in both.items] == ["gen-2"]
        errors = await generations.list(GenerationFilter(finish_reason="error", cancelled=True), limit=10)
        assert [g.id for g in errors.items] == ["gen-2", "gen-1", "gen-0"]
    finally:
        await ledger.close()


def test_the_head_revision_is_alembics_head():
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_a_ledger_at_head_opens_without_importing_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    program = (
        "import asyncio, sys\n"
        "from genledger.ledger import Ledger\n"
        "async def main():\n"
        f"    ledger = await Ledger.open({url!r})\n"
        "    await ledger.close()\n"
        "    print(any(name.startswith('alembic') for name in sys.modules))\n"
        "asyncio.run(main())\n"
    )
    run_python = [sys.executable, "-c", program]
    # A new file is migrated (Alembic loaded); once at head, a second open needs none of it.
    assert subprocess.run(run_python, capture_output=True, text=True, check=True).stdout.strip() == "True"
    assert subprocess.run(run_python, capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_a_sqlite_gateway_loads_neither_asyncpg_nor_jinja2(tmp_path: Path):
    # 3 and 2 MiB of each worker: asyncpg is PostgreSQL's alone, Jinja2 the dashboard's.
    url = f"sqlite:///{tmp_path}/ledger.db"
    program = (
        "import asyncio, sys\n"
        "import genledger.cli, genledger.api.app, genledger.api.server\n"
        "from genledger.ledger import Ledger\n"
        "async def main():\n"
        f"    ledger = await Ledger.open({url!r})\n"
        "    await ledger.close()\n"
        "    print(sorted(name for name in ('asyncpg', 'jinja2') if name in sys.modules))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
