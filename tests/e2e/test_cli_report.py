"""``genledger report`` on a ledger with known records, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genledger.cli import app
from genledger.ledger import Ledger
from tests.gateway import run_with_ledger
from tests.ledger.records import generation
from tests.services import postgres_database

DAY1 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 23, 59, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENLEDGER_CONFIG", raising=False)
    if request.param == "sqlite":
        monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
        yield f"sqlite:///{tmp_path}/genledger.db"  # the CLI's default, in this folder
        return
    with postgres_database() as url:
        monkeypatch.setenv("GENLEDGER_DATABASE_URL", url)
        yield url


@pytest.fixture
def seeded(ledger_url: str) -> str:
    async def seed(ledger: Ledger) -> None:
        app_key, _ = await ledger.keys.create("app")
        other, _ = await ledger.keys.create("other")
        chat = dict(model="acme/chat", created_at=DAY1, tokens_prompt=100, tokens_completion=10)
        for latency, finish, team in (
            (10.0, "stop", "a"),
            (20.0, "stop", "a"),
            (30.0, "error", "b"),
            (40.0, "stop", "b"),
        ):
            await ledger.generations.record(
                generation(
                    app_key.id,
                    **chat,
                    latency_ms=latency,
                    finish_reason=finish,
                    charge_pico=250_000_000_001,  # 0.250000000001 USD: exact only as integers
                    metadata={"team": team},
                )
            )
        await ledger.generations.record(
            generation(
                other.id, model="acme/big", created_at=DAY2, latency_ms=None, charge_pico=3 * 10**12,
                tokens_prompt=7, tokens_completion=3, external_user="u1",
            )
        )  # fmt: skip

    run_with_ledger(ledger_url, seed)
    return ledger_url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["report", *args])
    return result.exit_code, result.output


def cells(out: str, first: str) -> list[str]:
    line = next(line for line in out.splitlines() if re.search(rf"│ {re.escape(first)}\s", line))
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def test_report_by_model_and_day_sums_and_percentiles(seeded: str):
    code, out = run("--by", "model,day")
    assert code == 0, out
    assert cells(out, "acme/big") == ["acme/big", "2026-11-03", "1", "3", "7", "3", "-", "-", "0.0%"]
    assert cells(out, "acme/chat") == [
        "acme/chat", "2026-11-02", "4", "1.000000000004", "400", "40", "25.0", "38.5", "25.0%",
    ]  # fmt: skip
    assert cells(out, "total") == ["total", "", "5", "4.000000000004", "407", "43", "", "", "20.0%"]


def test_report_filters_and_key_names(seeded: str):
    code, out = run("--by", "key", "--since", "2026-11-03")
    assert code == 0, out
    assert cells(out, "other")[:3] == ["other", "1", "3"] and "│ app" not in out
    code, out = run("--by", "metadata.team", "--key", "app", "--metadata", "team=b")
    assert code == 0, out
    assert cells(out, "b")[:3] == ["b", "2", "0.500000000002"] and cells(out, "b")[-1] == "50.0%"
    code, out = run("--by", "user,provider", "--model", "acme/big", "--until", "2026-11-04T00:00:00Z")
    assert code == 0 and cells(out, "u1")[:3] == ["u1", "FakeAI", "1"]
    code, out = run("--by", "session", "--user", "nobody", "--provider", "x", "--session", "s")
    assert code == 0 and cells(out, "total")[1:3] == ["0", "0"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--by", "colour"], 2, "--by: 'colour' is not one of"),
        (["--since", "yesterday"], 2, "--since must be an ISO 8601"),
        (["--metadata", "team"], 2, "--metadata must be KEY=VALUE"),
        (["--metadata", "team=a", "--metadata", "team=b"], 2, "--metadata names 'team' twice"),
        (["--key", "nobody"], 1, "no key named 'nobody'"),
    ],
)
def test_report_refuses_bad_options(seeded: str, args: list[str], code: int, message: str):
    found, out = run(*args)
    assert found == code and message in out, out
