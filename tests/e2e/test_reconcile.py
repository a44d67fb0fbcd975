"""Reconciliation end to end: genledger as the upstream of another genledger, both served for
real on 127.0.0.1, on SQLite and PostgreSQL. The downstream records the upstream's
``usage.cost`` as ``upstream_inference_cost``; ``genledger reconcile`` passes a clean day and
names an injected drift."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from genledger.cli import app
from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger
from genledger.ledger.schema import generations as generations_table
from tests.e2e.conftest import MODEL, PRICES, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger
from tests.services import postgres_database

KEY_VARIABLE = "GENLEDGER_TEST_UPSTREAM_KEY"


@pytest.fixture
def downstream_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The downstream genledger's own ledger, of the same kind as the upstream's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/downstream.db"
    else:
        with postgres_database() as url:
            yield url


def downstream_config(folder: Path, database_url: str, upstream_url: str) -> Path:
    path = folder / "downstream.toml"
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'[providers.upstream]\nkind = "openai"\nbase_url = "{upstream_url}"\n'
        f'api_key_env = "{KEY_VARIABLE}"\ndisplay_name = "Upstream genledger"\n'
        f'[models."{MODEL}"]\nprovider = "upstream"\nupstream_model = "{MODEL}"\n'
        + "".join(f'{name} = "{value}"\n' for name, value in PRICES.items())
        + '[audit]\ncost_tolerance = "0"\n'
    )
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    return result.exit_code, result.output


def test_reconcile_against_an_upstream_genledger_passes_clean_and_names_a_drift(
    database_url: str, downstream_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    upstream_secret = create_key(database_url, f"downstream-{tmp_path.name[-12:]}")
    monkeypatch.setenv(KEY_VARIABLE, upstream_secret)
    with (
        FakeOpenAIInThread() as fake,
        GatewayServer.build(**gateway_settings(database_url, fake.api_url)) as upstream,
    ):
        config = downstream_config(tmp_path, downstream_url, upstream.base_url)
        secret = create_key(downstream_url, "caller")
        with GatewayServer.build(**_settings_of(config)) as downstream:
            client = openai.OpenAI(api_key=secret, base_url=downstream.base_url, max_retries=0)
            ids = [
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi " * n}]
                ).id
                for n in (1, 2)
            ]
            stream = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "streamed"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            ids.append(next(iter(stream)).id)
            for _ in stream:
                pass
            shown = httpx.get(
                downstream.base_url + "/generation",
                params={"id": ids[0]},
                headers={"Authorization": f"Bearer {secret}"},
            ).json()["data"]

    async def both(ledger: Ledger) -> dict[str, tuple[str | None, int | None, int]]:
        page = await ledger.generations.list(GenerationFilter(), limit=10)
        return {g.id: (g.upstream_id, g.upstream_cost_pico, g.charge_pico) for g in page.items}

    ours = run_with_ledger(downstream_url, both)
    assert set(ours) == set(ids)
    theirs = run_with_ledger(database_url, both)
    for upstream_id, upstream_cost, charge in ours.values():
        assert upstream_id in theirs
        assert upstream_cost == theirs[upstream_id][2] == charge > 0  # same prices: no margin
    assert shown["upstream_inference_cost"] == shown["usage"]

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    # Reconcile needs the upstream served again (it was stopped with the block above).
    with (
        FakeOpenAIInThread() as fake,
        GatewayServer.build(**gateway_settings(database_url, fake.api_url)) as upstream,
    ):
        config = downstream_config(tmp_path, downstream_url, upstream.base_url)
        code, out = run("reconcile", "--provider", "upstream", "--since", since, "--config", str(config))
        assert code == 0, out
        assert "3 generations of upstream examined, 0 without an upstream id, 0 differences" in out

        drifted = ours[ids[1]][0]

        async def inject(ledger: Ledger) -> None:
            async with ledger.engine.begin() as connection:
                await connection.execute(
                    update(generations_table)
                    .where(generations_table.c.id == drifted)
                    .values(
                        total_cost_pico=generations_table.c.total_cost_pico + 7,
                        tokens_completion=generations_table.c.tokens_completion + 1,
                    )
                )

        run_with_ledger(database_url, inject)
        code, out = run(
            "reconcile",
            "--provider",
            "upstream",
            "--since",
            since,
            "--format",
            "csv",
            "--config",
            str(config),
        )
        assert code == 1, out
        rows = list(csv.DictReader(io.StringIO(out)))
        assert {(r["generation"], r["upstream id"], r["field"]) for r in rows} == {
            (ids[1], drifted, "tokens_completion"),
            (ids[1], drifted, "cost"),
        }
        cost = next(r for r in rows if r["field"] == "cost")
        assert cost["theirs"] != cost["ours"]

        # A provider that does not serve /generation (an OpenAI-compatible server): one line, 3.
        config = downstream_config(tmp_path, downstream_url, fake.api_url)
        code, out = run("reconcile", "--provider", "upstream", "--since", since, "--config", str(config))
        assert code == 3, out
        assert f"error: cannot read upstream's generations at {fake.api_url}" in out
        assert "Traceback" not in out
    # Nobody there any more: one line, 3.
    config = downstream_config(tmp_path, downstream_url, upstream.base_url)
    code, out = run("reconcile", "--provider", "upstream", "--since", since, "--config", str(config))
    assert code == 3 and f"error: cannot read upstream's generations at {upstream.base_url}" in out, out


def _settings_of(config: Path) -> dict:
    import tomllib

    return tomllib.loads(config.read_text())
