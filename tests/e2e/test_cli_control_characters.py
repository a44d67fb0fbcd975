"""Text a caller chose (a request's user, session and metadata; a key's name) reaches the
operator's terminal through the command line's tables: its control characters are shown
escaped, never written, so that no caller can send the terminal an escape sequence (colours,
the window's title, the clipboard, a cleared screen)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genledger.cli import app
from genledger.ledger import Ledger
from tests.gateway import run_with_ledger
from tests.ledger.records import generation

HOSTILE = "u\x1b]0;PWNED\x07\x1b[2J\x9b31m"


@pytest.fixture
def generation_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENLEDGER_CONFIG", raising=False)
    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)

    async def seed(ledger: Ledger) -> str:
        key, _ = await ledger.keys.create("app\x1b[31m", label="lab\x1b[5m")
        made = generation(
            key.id,
            model="acme/chat",
            created_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
            external_user=HOSTILE,
            session_id="s\x1b[5m",
            metadata={"team": "v\x1b[41m"},
        )
        await ledger.generations.record(made)
        return made.id

    return run_with_ledger(f"sqlite:///{tmp_path}/genledger.db", seed)


@pytest.mark.parametrize(
    "args",
    [
        ["generations", "get", "{id}"],
        ["generations", "list"],
        ["report", "--by", "user"],
        ["report", "--by", "key"],
        ["keys", "list"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_control_characters_in_recorded_text_are_shown_escaped(generation_id: str, args: list[str]):
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [a.format(id=generation_id) for a in args])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x9b" not in result.output
    assert "\\x1b" in result.output
