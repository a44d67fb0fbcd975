"""``genledger generations list`` and ``export``, run as a user runs them, on known records."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from genledger.api.export_wire import CSV_COLUMNS
from genledger.api.generation_wire import ITEM_KEYS, LEDGER_KEYS, listed_json
from genledger.cli import app
from genledger.core.content import Feedback
from genledger.core.generation import Generation, ProviderAttempt
from genledger.ledger import Ledger
from tests.gateway import create_key, run_with_ledger, seed_generations
from tests.services import postgres_database

TOP = datetime(2026, 5, 1, 12, tzinfo=UTC)
MINE = 2500  # more than two export batches (1000)
THEIRS = 5
GEN_ID = re.compile(r"gen-(?:ci|other)-\d{6}")


def made(prefix: str, offset: timedelta = timedelta()) -> Callable[[str, int], Generation]:
    def make(key_id: str, i: int) -> Generation:
        return Generation(
            id=f"gen-{prefix}-{i:06d}",
            key_id=key_id,
            created_at=TOP + offset - timedelta(seconds=i // 2),  # pairs share a time: id decides
            model=("acme/a", "acme/b", "acme/c")[i % 3],
            provider_name=("FakeAI", "Other")[i % 4 == 0],
            total_cost_pico=i * 1_234_567_891,
            charge_pico=i * 1_234_567_891,
            cache_discount_pico=None if i % 2 else i,
            streamed=i % 2 == 0,
            cancelled=i % 10 == 0,
            latency_ms=5.25 * i,
            finish_reason=("stop", "length", None)[i % 3],
            tokens_prompt=i,
            tokens_completion=None if i % 5 == 0 else 3 * i,
            external_user=f"user-{i % 4}",
            session_id=f"s-{i % 6}",
            app_title='An app, with "quotes"' if i % 2 else None,
            provider_responses=(ProviderAttempt(200, "FakeAI", 9.5, f"up-{i}"),) if i % 3 else (),
            metadata={"team": ("red", "blue")[i % 2], "n": str(i)} if i % 7 else None,
            upstream_cost_pico=i * 1_000_000_003 if i % 4 == 1 else None,
        )

    return make


def feedback_on(generation_id: str, key_id: str = "") -> Feedback | None:
    """The feedback seeded on a generation of "ci": every ninth has some."""
    number = int(generation_id.rsplit("-", 1)[1])
    if not generation_id.startswith("gen-ci") or number % 9:
        return None
    comment = None if number % 2 else f"slow, said {number}"
    return Feedback(generation_id, key_id, "latency", comment, TOP + timedelta(minutes=number))


def newest_first(generations: list[Generation]) -> list[Generation]:
    return sorted(generations, key=lambda g: (g.created_at, g.id), reverse=True)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('cli-ledger')}/genledger.db"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(scope="module")
def known(ledger_url: str) -> list[Generation]:
    """Every generation in the ledger: MINE of the key "ci", THEIRS of "other"."""
    records: list[Generation] = []
    for name, count, offset in (("ci", MINE, timedelta()), ("other", THEIRS, timedelta(milliseconds=250))):
        create_key(ledger_url, name)
        make = made(name, offset)
        seed_generations(ledger_url, name, make, count)
        records += [make("", i) for i in range(count)]

    async def give_feedback(ledger: Ledger) -> None:
        key = await ledger.keys.find_by_name("ci")
        for generation in records:
            feedback = feedback_on(generation.id, key.id)
            if feedback is not None:
                await ledger.feedback.put(feedback)

    run_with_ledger(ledger_url, give_feedback)
    return newest_first(records)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENLEDGER_CONFIG", raising=False)
    monkeypatch.setenv("GENLEDGER_DATABASE_URL", ledger_url)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    return result.exit_code, result.output


def items(generations: list[Generation]) -> list[dict[str, Any]]:
    # The seeded records carry no key id of their own: the item does not show it anyway.
    return [listed_json(g, (), feedback_on(g.id)) for g in generations]


# (options, which of the known records they select)
FILTERS: list[tuple[list[str], Callable[[Generation], bool]]] = [
    ([], lambda g: True),
    (["--key", "other"], lambda g: g.id.startswith("gen-other")),
    (["--model", "acme/b"], lambda g: g.model == "acme/b"),
    (["--provider", "Other"], lambda g: g.provider_name == "Other"),
    (["--finish-reason", "length"], lambda g: g.finish_reason == "length"),
    (["--streamed"], lambda g: g.streamed is True),
    (["--not-streamed", "--user", "user-1"], lambda g: g.streamed is False and g.external_user == "user-1"),
    (["--session", "s-4"], lambda g: g.session_id == "s-4"),
    (
        ["--metadata", "team=blue", "--metadata", "n=7"],
        lambda g: (g.metadata or {}).get("team") == "blue" and (g.metadata or {}).get("n") == "7",
    ),
    (["--min-cost", "2.5"], lambda g: g.total_cost_pico >= 2_500_000_000_000),
    (
        ["--since", "2026-05-01T11:50:00Z", "--until", "2026-05-01T13:50:00+01:00"],
        lambda g: (
            datetime(2026, 5, 1, 11, 50, tzinfo=UTC)
            <= g.created_at
            < datetime(2026, 5, 1, 12, 50, tzinfo=UTC)
        ),
    ),
]


@pytest.mark.parametrize(("options", "selects"), FILTERS)
def test_list_shows_the_newest_matching_generations(folder, known, options, selects):
    expected = [g.id for g in known if selects(g)]
    code, out = run("generations", "list", *options, "--limit", "7")
    assert code == 0, out
    assert GEN_ID.findall(out) == expected[:7]
    assert f"newest {min(7, len(expected))} generations" in out


def test_list_shows_twenty_by_default_with_key_names_and_costs(folder, known):
    code, out = run("generations", "list")
    assert code == 0, out
    assert GEN_ID.findall(out) == [g.id for g in known[:20]]
    assert " ci " in out and " other " in out
    top = known[0]
    assert f"{Decimal(top.total_cost_pico).scaleb(-12).normalize():f}" in out


@pytest.mark.parametrize(("options", "selects"), FILTERS)
def test_export_ndjson_is_the_matching_items_newest_first(folder, known, options, selects):
    code, out = run("generations", "export", "-o", "out.ndjson", *options)
    assert code == 0, out
    expected = [g for g in known if selects(g)]
    exported = [orjson.loads(line) for line in (folder / "out.ndjson").read_bytes().splitlines()]
    assert exported == items(expected)
    assert f"exported {len(expected)} generations to out.ndjson" in out


def test_export_csv_parses_and_round_trips(folder, known):
    code, out = run("generations", "export", "--format", "csv", "-o", "out.csv")
    assert code == 0, out
    with (folder / "out.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    expected = items(known)
    assert len(rows) == len(expected) == MINE + THEIRS
    for row, item in zip(rows, expected, strict=True):
        back = {
            column: row[column]
            if isinstance(item[column], str)
            else (orjson.loads(row[column]) if row[column] else None)
            for column in CSV_COLUMNS
        }
        assert back == item


def from_parquet(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row as the list item shows it: money as float USD, the time in ISO 8601."""
    shown = dict(row)
    for column in ("total_cost", "cache_discount", "usage", "adjusted_usage", "upstream_inference_cost"):
        shown[column] = None if row[column] is None else float(row[column])
    if row["feedback"] is not None:
        shown["feedback"] = {**row["feedback"], "created_at": row["feedback"]["created_at"].isoformat()}
    shown["adjustments"] = orjson.loads(row["adjustments"])
    shown["created_at"] = row["created_at"].isoformat()
    shown["metadata"] = None if row["metadata"] is None else dict(row["metadata"])
    return shown


def test_export_parquet_reads_back_as_the_items_one_row_group_per_batch(folder, known):
    import pyarrow.parquet as pq

    from genledger.api.parquet_wire import SCHEMA

    code, out = run("generations", "export", "--format", "parquet", "-o", "out.parquet", "--key", "ci")
    assert code == 0, out
    mine = [g for g in known if g.id.startswith("gen-ci")]
    parquet = pq.ParquetFile(folder / "out.parquet")
    assert parquet.schema_arrow == SCHEMA
    assert parquet.metadata.num_row_groups == 3  # 1000 + 1000 + 500
    rows = parquet.read().to_pylist()
    assert [from_parquet(row) for row in rows] == items(mine)
    # Money is exact in Parquet: the ledger's picodollars, not the JSON's floats.
    assert [row["usage"] for row in rows] == [Decimal(g.charge_pico).scaleb(-12) for g in mine]
    assert [row["upstream_inference_cost"] for row in rows] == [
        None if g.upstream_cost_pico is None else Decimal(g.upstream_cost_pico).scaleb(-12) for g in mine
    ]
    assert sum(row["feedback"] is not None for row in rows) == len(range(0, MINE, 9))


def test_the_parquet_schema_has_a_column_for_every_item_key_in_order():
    from genledger.api.parquet_wire import SCHEMA

    assert tuple(SCHEMA.names) == (*ITEM_KEYS, *LEDGER_KEYS) == CSV_COLUMNS


def test_export_to_parquet_without_pyarrow_exits_2_naming_the_extra(folder, known):
    shim = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
        "from genledger.cli import main; sys.argv = ['genledger', *sys.argv[1:]]; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", shim, "generations", "export", "--format", "parquet", "-o", "out.parquet"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'genledger[export]'" in result.stderr
    assert not (folder / "out.parquet").exists()
    # The other formats need nothing more.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            shim,
            "generations",
            "export",
            "--key",
            "other",
            "-o",
            "out.csv",
            "--format",
            "csv",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len((folder / "out.csv").read_text().splitlines()) == 1 + THEIRS


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--since", "yesterday"], "--since"),
        (["--until", "2026-13-01"], "--until"),
        (["--min-cost", "-1"], "--min-cost"),
        (["--model", ""], "--model"),
        (["--metadata", "team"], "--metadata"),
        (["--metadata", "=x"], "--metadata"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_a_bad_option_exits_2_naming_it(folder, known, options, named):
    code, out = run("generations", "list", *options)
    assert code == 2 and named in out, out
    if "--limit" not in options:
        code, out = run("generations", "export", "-o", "out.ndjson", *options)
        assert code == 2 and named in out, out
        assert not (folder / "out.ndjson").exists()


def test_an_unknown_key_exits_1(folder, known):
    code, out = run("generations", "list", "--key", "nobody")
    assert code == 1 and "no key named 'nobody'" in out
    code, out = run("generations", "export", "--key", "nobody", "-o", "out.ndjson")
    assert code == 1 and "no key named 'nobody'" in out
    assert not (folder / "out.ndjson").exists()


def test_an_export_of_nothing_is_an_empty_file_or_only_the_header(folder, known):
    code, _ = run("generations", "export", "--user", "nobody", "-o", "out.ndjson")
    assert code == 0 and (folder / "out.ndjson").read_bytes() == b""
    code, _ = run("generations", "export", "--user", "nobody", "--format", "csv", "-o", "out.csv")
    assert code == 0 and next(csv.reader(io.StringIO((folder / "out.csv").read_text()))) == list(CSV_COLUMNS)


def test_the_progress_bar_reports_the_rows(folder, known):
    code, out = run("generations", "export", "--since", "2026-04-30T00:00:00Z", "-o", "out.ndjson")
    assert code == 0 and f"{MINE + THEIRS} rows" in out, out


def test_an_output_in_a_folder_that_does_not_exist_exits_2(folder, known):
    code, out = run("generations", "export", "-o", "missing/out.ndjson")
    assert code == 2 and "--output: no folder missing" in out, out
