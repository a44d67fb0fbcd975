"""Ledger truth end to end, on SQLite and PostgreSQL: two real gateways rating traffic while a
price changes, ``reprice``, and statements sealed, tampered with and verified by the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from genledger.cli import app
from genledger.config import load_settings
from genledger.core.generation import Generation
from genledger.core.pricing import Price, cost
from genledger.core.stores import GenerationFilter, walk
from genledger.core.usage import Usage
from genledger.ledger import Ledger
from genledger.ledger.schema import generations as generations_table
from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger

OLD = {"prompt_price": "0.15", "completion_price": "0.60", "cached_prompt_price": "0.075"}
NEW = {"prompt_price": "0.25", "completion_price": "0.80", "cached_prompt_price": "0.075"}


def price(prices: dict[str, str]) -> Price:
    return Price(
        Decimal(prices["prompt_price"]),
        Decimal(prices["completion_price"]),
        Decimal(prices["cached_prompt_price"]),
    )


def settings(database_url: str, upstream: FakeOpenAIInThread, prices: dict[str, str]) -> dict:
    base = gateway_settings(database_url, upstream.api_url)
    base["models"][MODEL] = {**base["models"][MODEL], **prices}
    return base


def config_file(
    folder: Path, database_url: str, upstream: FakeOpenAIInThread, prices: dict[str, str]
) -> Path:
    path = folder / "genledger.toml"
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'[providers.fake]\nkind = "openai"\nbase_url = "{upstream.api_url}"\ndisplay_name = "FakeAI"\n'
        f'[models."{MODEL}"]\nprovider = "fake"\nupstream_model = "fast"\n'
        + "".join(f'{name} = "{value}"\n' for name, value in prices.items())
    )
    return path


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    return result.exit_code, result.output


def traffic(gateway: GatewayServer, secret: str, count: int, model: str = MODEL) -> list[str]:
    client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0)
    ids = []
    for i in range(count):
        messages = [{"role": "user", "content": "hello " * (i + 1)}]
        if i % 2:
            stream = client.chat.completions.create(model=model, messages=messages, stream=True)
            ids.append(next(iter(stream)).id)
            for _ in stream:
                pass
        else:
            ids.append(client.chat.completions.create(model=model, messages=messages).id)
    return ids


def records(database_url: str) -> list[Generation]:
    async def read(ledger: Ledger) -> list[Generation]:
        found: list[Generation] = []
        async for batch in walk(ledger.generations, GenerationFilter(), batch=500):
            found += batch
        return found

    return run_with_ledger(database_url, read)


def usage_of(g: Generation) -> Usage:
    return Usage(g.tokens_prompt or 0, g.tokens_completion or 0, cached_tokens=g.native_tokens_cached or 0)


def test_a_price_change_mid_traffic_rates_each_generation_by_its_version_and_reprice_corrects_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    with FakeOpenAIInThread() as upstream:
        secret = create_key(database_url, "truth")
        with GatewayServer.build(**settings(database_url, upstream, OLD)) as first:
            before = traffic(first, secret, 4)
            # A second instance starts with corrected prices while the first keeps serving.
            with GatewayServer.build(**settings(database_url, upstream, NEW)) as second:
                models = httpx.get(second.base_url + "/models", headers=bearer(secret)).json()["data"]
                assert next(m for m in models if m["id"] == MODEL)["price_version"] == 2
                during = traffic(first, secret, 2) + traffic(second, secret, 4)
        config = config_file(tmp_path, database_url, upstream, NEW)

        by_id = {g.id: g for g in records(database_url)}
        versions = {1: price(OLD), 2: price(NEW)}
        assert [by_id[i].price_version for i in before + during] == [1] * 6 + [2] * 4
        for i in before + during:
            g = by_id[i]
            assert g.charge_pico == cost(usage_of(g), versions[g.price_version or 0]).total > 0

        code, out = run("prices", "history", MODEL, "--config", str(config))
        assert code == 0, out
        assert "0.15" in out and "0.25" in out
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        common = [
            "reprice",
            "--model",
            MODEL,
            "--since",
            since,
            "--reason",
            "prompt price typo",
            "--config",
            str(config),
        ]
        code, out = run(*common, "--dry-run")
        assert code == 0, out
        assert "would write (dry run) 6 adjustments" in out
        code, out = run(*common, "--apply")
        assert code == 0, out
        assert "wrote 6 adjustments" in out
        code, out = run(*common, "--apply")
        assert code == 0 and "wrote 0 adjustments" in out, out

        corrected = sum(cost(usage_of(g), price(NEW)).total for g in by_id.values())
        with GatewayServer.build(**settings(database_url, upstream, NEW)) as third:
            key = httpx.get(third.base_url + "/key", headers=bearer(secret)).json()["data"]
            assert Decimal(str(key["usage"])) == Decimal(corrected).scaleb(-12)
            assert key["usage_daily"] == key["usage"] and key["reserved_in_flight"] == 0
            listed = httpx.get(
                third.base_url + "/generations",
                headers=bearer(secret),
                params={"limit": 100},
            ).json()["data"]
            adjusted = {item["id"]: item for item in listed if item["adjustments"]}
            assert set(adjusted) == set(before + during[:2])
            for item in adjusted.values():
                g = by_id[item["id"]]
                assert item["adjustments"][0]["to_version"] == 2
                assert item["adjustments"][0]["reason"] == "prompt price typo"
                assert Decimal(str(item["adjusted_usage"])) == Decimal(
                    cost(usage_of(g), price(NEW)).total
                ).scaleb(-12)

    async def exact(ledger: Ledger) -> tuple[int, int]:
        found = await ledger.keys.find_by_name("truth")
        assert found is not None
        rows = await ledger.generations.activity(GenerationFilter(key_id=found.id), ())
        return rows[0].usage_pico, found.usage_pico

    assert run_with_ledger(database_url, exact) == (corrected, corrected)


def test_statements_close_verify_and_name_a_record_edited_by_hand(database_url: str, tmp_path: Path):
    # Yesterday's records, closed from the command line, then edited behind the ledger's back.
    config = tmp_path / "genledger.toml"
    config.write_text(f'database_url = "{database_url}"\n')
    day = date.today() - timedelta(days=400 if "sqlite" in database_url else 401)  # a day of its own

    async def seed(ledger: Ledger) -> list[str]:
        key, _ = await ledger.keys.create(f"statements-{day}")
        start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
        made = [
            Generation(
                id=f"gen-st-{day}-{i}",
                key_id=key.id,
                created_at=start + timedelta(minutes=i),
                model="m",
                charge_pico=10**15 + i,
            )
            for i in range(3)
        ]
        for g in made:
            await ledger.generations.record(g)
        return [g.id for g in made]

    ids = run_with_ledger(database_url, seed)
    code, out = run("statements", "close", "--day", day.isoformat(), "--config", str(config))
    assert code == 0, out
    assert f"closed {day}: 3 records" in out
    code, out = run("statements", "close", "--day", day.isoformat(), "--config", str(config))
    assert code == 1 and "closed already" in out
    code, out = run("statements", "verify", "--config", str(config))
    assert code == 0 and "verified" in out, out

    async def edit(ledger: Ledger) -> None:
        async with ledger.engine.begin() as connection:
            await connection.execute(
                update(generations_table).where(generations_table.c.id == ids[1]).values(usage_pico=1)
            )

    run_with_ledger(database_url, edit)
    code, out = run("statements", "verify", "--config", str(config))
    assert code == 1
    assert f"generation:{ids[1]} was changed after close" in out
    assert ids[0] not in out and ids[2] not in out


SPARE_MODEL = "acme/spare-chat"  # its own price versions, whatever else this database holds


def fallback_config(
    folder: Path, database_url: str, primary, fallback, fallback_prices: dict[str, str]
) -> Path:
    path = folder / "fallback.toml"
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'[providers.fake]\nkind = "openai"\nbase_url = "{primary.api_url}"\ndisplay_name = "FakeAI"\n'
        f'[providers.spare]\nkind = "openai"\nbase_url = "{fallback.api_url}"\ndisplay_name = "SpareAI"\n'
        f'[models."{SPARE_MODEL}"]\nprovider = "fake"\nupstream_model = "fast"\n'
        + "".join(f'{name} = "{value}"\n' for name, value in OLD.items())
        + 'fallbacks = [{ provider = "spare", upstream_model = "fast", '
        + ", ".join(f'{name} = "{value}"' for name, value in fallback_prices.items())
        + " }]\n"
    )
    return path


def test_a_fallback_endpoints_prices_are_versioned_and_reprice_rates_at_them(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A generation a fallback served was charged the fallback's prices: re-rating it at the
    model's would write adjustments nobody asked for. And a change of the fallback's prices
    alone is a new version."""
    monkeypatch.chdir(tmp_path)
    spare_prices = {"prompt_price": "1.5", "completion_price": "2", "cached_prompt_price": "0.5"}
    with FakeOpenAIInThread() as primary, FakeOpenAIInThread() as spare:
        config = fallback_config(tmp_path, database_url, primary, spare, spare_prices)
        secret = create_key(database_url, "fallbacks")
        primary.set_behavior("status", status=500, times=2)  # the first two go to the spare
        with GatewayServer(load_settings(config)) as gateway:
            ids = traffic(gateway, secret, 4, SPARE_MODEL)
        by_id = {g.id: g for g in records(database_url)}
        served = [by_id[i].provider_name for i in ids]
        assert served == ["SpareAI", "SpareAI", "FakeAI", "FakeAI"]
        rates = {"SpareAI": price(spare_prices), "FakeAI": price(OLD)}
        for i in ids:
            g = by_id[i]
            assert g.price_version == 1
            assert g.charge_pico == cost(usage_of(g), rates[g.provider_name]).total > 0

        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        common = ["reprice", "--model", SPARE_MODEL, "--since", since, "--reason", "check", "--config"]
        code, out = run(*common, str(config), "--dry-run")
        assert code == 0 and "under price version 1; would write (dry run) 0 adjustments" in out, out

        dearer = {**spare_prices, "prompt_price": "3"}  # the fallback's price alone changes
        config = fallback_config(tmp_path, database_url, primary, spare, dearer)
        code, out = run(*common, str(config), "--apply")
        assert code == 0 and "under price version 2; wrote 2 adjustments" in out, out
        expected = sum(cost(usage_of(by_id[i]), price(dearer)).total - by_id[i].charge_pico for i in ids[:2])
        assert f"totalling {Decimal(expected).scaleb(-12).normalize():f} USD" in out, out
        code, out = run("prices", "history", SPARE_MODEL, "--config", str(config))
        rows = [[cell.strip() for cell in line.split("│")[1:6]] for line in out.splitlines() if "│" in line]
        assert code == 0 and [[r[0], r[2], r[3], r[4]] for r in rows] == [
            ["1", "-", "0.15", "0.6"],
            ["1", "SpareAI", "1.5", "2"],
            ["2", "-", "0.15", "0.6"],
            ["2", "SpareAI", "3", "2"],
        ], out
