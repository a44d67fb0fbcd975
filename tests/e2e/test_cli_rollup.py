"""``genledger rollup rebuild``: generations imported into hours the rollup has closed are
counted by activity once it has run, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from genledger.cli import app
from genledger.core.activity import DAY
from genledger.core.generation import Generation
from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger
from tests.gateway import run_with_ledger

DAYS_AGO = 3
CHARGE = 10**16 + 3  # far above 2**53: a float on the way would lose picodollars


def _made(key_id: str, at: datetime, count: int, tag: str) -> list[Generation]:
    return [
        Generation(
            id=f"gen-rollup-{tag}-{i}",
            key_id=key_id,
            created_at=at + timedelta(minutes=i),
            model="acme/chat",
            charge_pico=CHARGE + i,
        )
        for i in range(count)
    ]


def test_a_rebuild_counts_generations_imported_into_closed_hours(database_url: str, tmp_path: Path):
    config = tmp_path / "genledger.toml"
    config.write_text(f'database_url = "{database_url}"\n')
    at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=DAYS_AGO)

    async def seed_and_roll_up(ledger: Ledger) -> str:
        key, _ = await ledger.keys.create("rollup-rebuild")
        for generation in _made(key.id, at, 3, "live"):
            await ledger.generations.record(generation)
        marks = await ledger.generations.rollup.catch_up()
        assert marks.hours is not None and marks.hours > at + timedelta(hours=1)
        # Then an import writes rows into that closed hour, as a restore from a backup would.
        for generation in _made(key.id, at + timedelta(minutes=30), 2, "imported"):
            await ledger.generations.record(generation)
        return key.id

    async def by_day(ledger: Ledger) -> tuple[int, int, int]:
        rows = await ledger.generations.activity(GenerationFilter(key_id=key_id), (DAY,))
        found = await ledger.keys.find_by_id(key_id)
        assert found is not None
        return sum(row.requests for row in rows), sum(row.usage_pico for row in rows), found.usage_pico

    key_id = run_with_ledger(database_url, seed_and_roll_up)
    requests, usage, charged = run_with_ledger(database_url, by_day)
    assert charged == 5 * CHARGE + 0 + 1 + 2 + 0 + 1
    assert (requests, usage) == (3, 3 * CHARGE + 3)  # the rollup closed the hour before the import

    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["rollup", "rebuild", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "rolled up every hour before" in result.output

    requests, usage, charged = run_with_ledger(database_url, by_day)
    assert (requests, usage) == (5, charged)
