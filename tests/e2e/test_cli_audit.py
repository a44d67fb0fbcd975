"""The audit commands' refusals: each names what is wrong, with exit status 2 (a bad option) or
1 (nothing to do it on)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genledger.cli import app


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENLEDGER_CONFIG", raising=False)
    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    return result.exit_code, result.output


DEMO = "genledger/demo"
TODAY = datetime.now(UTC).date().isoformat()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["reprice", "--model", DEMO, "--reason", "r"], 2, "--since is required"),
        (["reprice", "--model", DEMO, "--since", "2026-11-01"], 2, "--reason is required"),
        (
            ["reprice", "--model", "nope", "--since", "2026-11-01", "--reason", "r"],
            2,
            "not a configured model",
        ),
        (["reprice", "--model", DEMO, "--since", "yesterday", "--reason", "r"], 2, "--since"),
        (
            ["reprice", "--model", DEMO, "--since", "2026-11-01", "--reason", "r" * 501],
            2,
            "reason of 1 to 500",
        ),
        (["statements", "close", "--day", "27/11/2026"], 2, "--day must be a date"),
        (["statements", "close", "--day", TODAY], 1, "grace period"),
        # A negative grace would seal a day that has not ended; nan and inf are no seconds.
        (["statements", "close", "--day", TODAY, "--grace", "-90000"], 2, "--grace"),
        (["statements", "close", "--day", TODAY, "--grace", "nan"], 2, "--grace"),
        (["statements", "close", "--day", TODAY, "--grace", "inf"], 2, "--grace"),
        (["prices", "history", "nope/model"], 1, "no price versions"),
        (
            ["reconcile", "--provider", "demo", "--since", "2026-11-01"],
            2,
            "not a configured OpenAI-compatible",
        ),
        (["reconcile", "--provider", "demo"], 2, "--since is required"),
    ],
)
def test_a_refusal_names_the_problem(folder: Path, args: list[str], code: int, says: str):
    found, out = run(*args)
    assert found == code, out
    assert says in out


def test_on_a_fresh_ledger_the_demo_prices_are_version_1_and_reprice_finds_nothing(folder: Path):
    reprice = ("reprice", "--model", DEMO, "--since", "2026-11-01", "--reason", "check")
    code, out = run(*reprice, "--dry-run")
    assert code == 0, out
    assert "0 generations of genledger/demo examined under price version 1" in out
    # A dry run writes nothing, not even the price version it rated under.
    code, out = run("prices", "history", DEMO)
    assert code == 1 and "no price versions" in out, out
    code, out = run(*reprice, "--apply")
    assert code == 0 and "under price version 1; wrote 0 adjustments" in out, out
    code, out = run("prices", "history", DEMO)
    assert code == 0 and "0.5" in out and "1.5" in out
    code, out = run("statements", "verify")
    assert code == 0 and "0 closed days verified" in out
