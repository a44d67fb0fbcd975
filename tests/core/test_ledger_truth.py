"""The pure parts of ledger truth: re-rating, statements' hashes, reconciliation, drift, the
max_tokens that fits, upstream cost parsing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from genledger.config import ConfigError, load_settings
from genledger.core.adjustments import recorded_usage, rerate
from genledger.core.generation import Generation
from genledger.core.money import from_usd
from genledger.core.prices import (
    PriceVersion,
    current_version,
    price_from_json,
    price_to_json,
    prices_from_json,
    prices_to_json,
    same_price,
)
from genledger.core.pricing import Price, cost, max_output_within, worst_case
from genledger.core.reconcile import ProviderRecord, differences, drifted
from genledger.core.statements import GENESIS, Change, Statement, chain_hash, compare, generation_entry
from genledger.core.usage import Usage, from_openai
from genledger.metrics import Metrics

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
PRICE = Price(Decimal("1"), Decimal("2"), cached_prompt=Decimal("0.5"), reasoning=Decimal("3"))


def generation(**fields) -> Generation:
    base = Generation(
        id="gen-1", key_id="k", created_at=T0, model="m", tokens_prompt=100, tokens_completion=10
    )
    return dataclasses.replace(base, **fields)


def test_prices_round_trip_as_exact_text_and_compare_by_value():
    assert price_from_json(price_to_json(PRICE)) == PRICE
    assert price_to_json(Price(Decimal("1.50"), Decimal("2"))) == {
        "prompt": "1.5",
        "completion": "2",
        "cached_prompt": None,
        "cache_write": None,
        "reasoning": None,
    }
    assert same_price(Price(Decimal("1.50"), Decimal("2")), Price(Decimal("1.5"), Decimal("2.000")))


def test_the_current_version_is_the_latest_while_it_charges_alike_else_the_next():
    later = T0 + timedelta(days=1)
    assert current_version([], "m", PRICE, T0) == PriceVersion("m", 1, T0, PRICE)
    v1 = PriceVersion("m", 1, T0, Price(Decimal("1.50"), Decimal("2")))
    assert current_version([v1], "m", Price(Decimal("1.5"), Decimal("2.0")), later) is v1
    assert current_version([v1], "m", PRICE, later) == PriceVersion("m", 2, later, PRICE)


def test_a_fallback_endpoints_own_prices_are_part_of_the_version():
    spare = Price(Decimal("3"), Decimal("4"))
    v1 = current_version([], "m", PRICE, T0, {"Spare": spare})
    assert v1.price_for("Spare") == spare and v1.price_for("Main") == PRICE and v1.price_for(None) == PRICE
    assert current_version([v1], "m", PRICE, T0, {"Spare": Price(Decimal("3.0"), Decimal("4"))}) is v1
    later = T0 + timedelta(days=1)
    v2 = current_version([v1], "m", PRICE, later, {"Spare": Price(Decimal("5"), Decimal("4"))})
    assert (v2.version, v2.effective_at) == (2, later)  # only the fallback's price changed
    assert current_version([v1], "m", PRICE, later).version == 2  # and so is dropping it
    assert prices_from_json(prices_to_json(PRICE, v2.endpoints)) == (PRICE, v2.endpoints)
    assert "endpoints" not in prices_to_json(PRICE, {})  # as versions made before were stored


def test_a_generation_a_fallback_served_is_rerated_at_the_fallbacks_price():
    spare = Price(Decimal("3"), Decimal("4"))
    version = PriceVersion("m", 1, T0, PRICE, {"Spare": spare})
    charged = cost(Usage(prompt_tokens=100, completion_tokens=10), spare).total  # generation()'s
    served = generation(charge_pico=charged, price_version=1, provider_name="Spare")
    assert rerate(served, (), version, reason="check", now=T0) is None
    dearer = PriceVersion("m", 2, T0, PRICE, {"Spare": Price(Decimal("6"), Decimal("4"))})
    adjustment = rerate(served, (), dearer, reason="check", now=T0)
    assert adjustment is not None and adjustment.amount_pico == 100 * 3_000_000


def test_rerating_targets_the_versions_cost_and_stops_there():
    v2 = PriceVersion("m", 2, T0, PRICE)
    g = generation(charge_pico=1, price_version=1)
    first = rerate(g, (), v2, reason="typo", now=T0)
    assert first is not None
    assert first.amount_pico == 100 * 1_000_000 + 10 * 2_000_000 - 1
    assert (first.from_version, first.to_version, first.id) == (1, 2, "gen-1@v2")
    assert rerate(g, (first,), v2, reason="typo", now=T0) is None
    v3 = PriceVersion("m", 3, T0, Price(Decimal("1"), Decimal("2")))
    assert rerate(g, (first,), v3, reason="again", now=T0) is None  # already costs that
    assert rerate(generation(tokens_prompt=None, tokens_completion=None), (), v2, reason="r", now=T0) is None
    assert recorded_usage(generation(native_tokens_cached=7)).cached_tokens == 7  # type: ignore[union-attr]


def test_a_statement_names_what_changed_and_a_broken_chain():
    entries = dict([generation_entry(generation()), generation_entry(generation(id="gen-2"))])
    sealed = Statement(date(2026, 11, 2), T0, 2, (), chain_hash(GENESIS, entries), GENESIS, entries)
    assert compare(sealed, entries, GENESIS) == []
    now = {**entries, "generation:gen-3": "x"}
    now["generation:gen-1"] = generation_entry(generation(charge_pico=9))[1]
    del now["generation:gen-2"]
    found = [(p.change, p.entry_id) for p in compare(sealed, now, GENESIS)]
    assert found == [
        (Change.CHANGED, "generation:gen-1"),
        (Change.REMOVED, "generation:gen-2"),
        (Change.ADDED, "generation:gen-3"),
    ]
    forged = dataclasses.replace(sealed, hash="f" * 64)
    assert [p.detail for p in compare(forged, entries, "e" * 64)] == [
        "chained to a hash that is not the previous statement's",
        "the statement's own hash does not match it",
    ]


def test_reconciliation_compares_tokens_exactly_and_cost_within_tolerance():
    ours = generation(upstream_id="up-1", total_cost_pico=1000, upstream_cost_pico=1005)
    assert differences(ours, ProviderRecord(100, 10, 1005), tolerance_pico=0) == []
    found = differences(ours, ProviderRecord(100, 11, 1000), tolerance_pico=4)
    assert [(d.field, d.ours, d.theirs) for d in found] == [
        ("tokens_completion", 10, 11),
        ("cost", 1005, 1000),
    ]
    assert differences(ours, ProviderRecord(100, 10, 1000), tolerance_pico=5) == []
    assert [d.field for d in differences(ours, None, tolerance_pico=0)] == ["record"]
    unreported = generation(total_cost_pico=1000)
    assert [d.field for d in differences(unreported, ProviderRecord(100, 10, 999), tolerance_pico=0)] == [
        "cost"
    ]
    assert drifted(ours, 4) and not drifted(ours, 5) and not drifted(unreported, 0)


def test_the_drift_counter_counts_generations_beyond_the_tolerance():
    metrics = Metrics(drift_tolerance_pico=4)
    metrics.recorded(generation(provider_name="Up", total_cost_pico=1000, upstream_cost_pico=1005), 0.001)
    metrics.recorded(generation(provider_name="Up", total_cost_pico=1000, upstream_cost_pico=1004), 0.001)
    assert b'genledger_upstream_cost_drift_total{provider="Up"} 1.0' in metrics.exposition()


def test_the_max_tokens_that_fits_is_the_largest_whose_worst_case_fits():
    budget = worst_case(10, 37, PRICE)
    assert max_output_within(10, budget, PRICE) == 37
    assert max_output_within(10, budget - 1, PRICE) == 36
    assert max_output_within(10, worst_case(10, 0, PRICE), PRICE) == 0
    free = Price(Decimal("1"), Decimal("0"))
    assert max_output_within(1, 10**9, free) == 2**31 - 1


@pytest.mark.parametrize(
    ("cost", "pico"),
    [
        (0.000123, 123_000_000),
        ("0.5", 500_000_000_000),
        (1.2345678901234e-05, 12_345_679),
        (None, None),
        (True, None),
        (-1, None),
        ("nan", None),
        ("x", None),
        ([], None),
    ],
)
def test_upstream_cost_is_read_from_usage_cost(cost, pico):
    usage = from_openai({"prompt_tokens": 1, "completion_tokens": 1, "cost": cost})
    assert usage is not None and usage.upstream_cost_pico == pico


def test_from_usd_inverts_to_usd():
    assert from_usd(4.95e-06) == 4_950_000


def test_a_cost_tolerance_must_be_exact():
    assert load_settings(None, audit={"cost_tolerance": "0.000001"}).audit.cost_tolerance == Decimal(
        "0.000001"
    )
    with pytest.raises(ConfigError, match=r"audit\.cost_tolerance"):
        load_settings(None, audit={"cost_tolerance": "0.0000000000001"})
