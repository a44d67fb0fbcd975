import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genledger.core.money import PriceError, per_token_pico, to_decimal, to_usd, usd_to_pico
from genledger.core.pricing import Price, Rates, cost, worst_case
from genledger.core.usage import MAX_REPORTED_TOKENS, Usage, from_openai
from genledger.providers.anthropic import usage_from_anthropic


def test_per_token_pico_is_exact():
    assert per_token_pico(Decimal("0.15")) == 150_000
    assert per_token_pico(Decimal("3")) == 3_000_000
    assert per_token_pico(Decimal("0.000001")) == 1


@pytest.mark.parametrize("bad", [Decimal("0.0000001"), Decimal("-1"), Decimal("10000.5")])
def test_prices_that_cannot_be_exact_are_refused(bad):
    with pytest.raises(PriceError):
        per_token_pico(bad)


def test_cost_of_plain_usage():
    price = Price(prompt=Decimal("0.15"), completion=Decimal("0.60"))
    result = cost(Usage(prompt_tokens=1000, completion_tokens=500), price)
    # 1000 * 0.15e-6 + 500 * 0.60e-6 = 0.00015 + 0.0003
    assert to_decimal(result.total) == Decimal("0.00045")
    assert result.cache_discount == 0


def test_cached_prompt_tokens_are_billed_at_the_cached_price_and_discounted():
    price = Price(prompt=Decimal("2"), completion=Decimal("8"), cached_prompt=Decimal("0.5"))
    result = cost(Usage(prompt_tokens=1000, completion_tokens=10, cached_tokens=400), price)
    assert to_decimal(result.total) == Decimal("600") * Decimal("2e-6") + Decimal("400") * Decimal(
        "0.5e-6"
    ) + Decimal("10") * Decimal("8e-6")
    assert to_decimal(result.cache_discount) == Decimal("400") * Decimal("1.5e-6")


def test_reasoning_defaults_to_completion_price_unless_priced():
    usage = Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=60)
    plain = Price(prompt=Decimal("1"), completion=Decimal("4"))
    priced = Price(prompt=Decimal("1"), completion=Decimal("4"), reasoning=Decimal("10"))
    assert cost(usage, plain).total == 100 * 4_000_000
    assert cost(usage, priced).total == 40 * 4_000_000 + 60 * 10_000_000


def test_cache_writes_use_their_own_price():
    price = Price(prompt=Decimal("3"), completion=Decimal("15"), cache_write=Decimal("3.75"))
    result = cost(Usage(prompt_tokens=100, cache_write_tokens=100), price)
    assert result.total == 100 * 3_750_000


def test_worst_case_uses_the_dearest_rates():
    price = Price(
        prompt=Decimal("1"), completion=Decimal("2"), cache_write=Decimal("1.25"), reasoning=Decimal("3")
    )
    assert worst_case(10, 20, price) == 10 * 1_250_000 + 20 * 3_000_000


def test_usd_round_trip_and_json_edge():
    assert usd_to_pico(Decimal("1.5")) == 1_500_000_000_000
    assert to_usd(63_000_000) == 0.000063
    with pytest.raises(PriceError):
        usd_to_pico(Decimal("0.0000000000001"))


def test_usage_from_openai_reads_details_and_tolerates_junk():
    usage = from_openai(
        {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert usage == Usage(prompt_tokens=12, completion_tokens=5, cached_tokens=4, reasoning_tokens=2)
    assert from_openai(None) is None
    junk = {"prompt_tokens": "x", "completion_tokens": -3, "prompt_tokens_details": 7}
    assert from_openai(junk) is None  # counts nothing: no report (estimated instead)
    assert from_openai({**junk, "prompt_tokens": 4}) == Usage(prompt_tokens=4)
    # Counting neither the prompt nor the completion is no report at all (estimated instead).
    assert from_openai({"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}) is None
    assert from_openai({"total_tokens": 5}) is None
    assert from_openai({"prompt_tokens": 5}) == Usage(prompt_tokens=5)
    assert from_openai({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}) is None
    # A completion counted without its prompt is kept: the gateway estimates the prompt.
    assert from_openai({"prompt_tokens": "5", "completion_tokens": 7}) == Usage(completion_tokens=7)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": MAX_REPORTED_TOKENS + 1, "completion_tokens": 1},
        {"prompt_tokens": 1, "completion_tokens": 10**20},
        {"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 10**13}},
    ],
)
def test_an_impossible_count_is_no_report(usage):
    """Believed, it would overflow the ledger's 64-bit integers (a 500 and no record)."""
    assert from_openai(usage) is None
    assert usage_from_anthropic({"input_tokens": MAX_REPORTED_TOKENS + 1, "output_tokens": 1}) is None


def test_an_impossible_upstream_cost_alone_is_dropped():
    usage = from_openai({"prompt_tokens": 1, "completion_tokens": 1, "cost": 1e20})
    assert usage == Usage(1, 1) and usage.upstream_cost_pico is None
    assert from_openai({"prompt_tokens": 1, "completion_tokens": 1, "cost": 1e6}) == Usage(
        1, 1, upstream_cost_pico=10**18
    )


@pytest.mark.parametrize("bad", [Decimal("-0.01"), Decimal("1000000.01"), Decimal("NaN"), Decimal("1e-13")])
def test_key_limits_are_bounded_and_exact(bad):
    from genledger.core.money import limit_to_pico

    with pytest.raises(PriceError):
        limit_to_pico(bad)


def test_the_largest_bounded_cost_fits_a_64_bit_column():
    from genledger.api.wire import MAX_TOKENS
    from genledger.core.money import MAX_LIMIT_USD, MAX_PRICE_PER_MILLION, limit_to_pico

    price = Price(prompt=MAX_PRICE_PER_MILLION, completion=MAX_PRICE_PER_MILLION)
    biggest = worst_case(4 * 1024 * 1024, MAX_TOKENS, price)  # a whole 4 MiB body, the most tokens
    assert biggest + limit_to_pico(MAX_LIMIT_USD) < 2**63


prices = st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=0, max_value=10_000_000)


@given(
    prompt=prices,
    completion=prices,
    cached_price=st.none() | prices,
    reasoning_price=st.none() | prices,
    prompt_tokens=tokens,
    completion_tokens=tokens,
    cached=tokens,
    reasoning=tokens,
)
def test_cost_is_exactly_the_decimal_arithmetic(
    prompt, completion, cached_price, reasoning_price, prompt_tokens, completion_tokens, cached, reasoning
):
    price = Price(prompt=prompt, completion=completion, cached_prompt=cached_price, reasoning=reasoning_price)
    cached = min(cached, prompt_tokens)
    reasoning = min(reasoning, completion_tokens)
    usage = Usage(prompt_tokens, completion_tokens, cached_tokens=cached, reasoning_tokens=reasoning)
    per_token = Decimal(1_000_000)
    expected = (
        (prompt_tokens - cached) * prompt
        + cached * (cached_price if cached_price is not None else prompt)
        + (completion_tokens - reasoning) * completion
        + reasoning * (reasoning_price if reasoning_price is not None else completion)
    ) / per_token
    result = cost(usage, price)
    assert to_decimal(result.total) == expected
    assert result.total <= worst_case(prompt_tokens, completion_tokens, price)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_to_usd_is_the_nearest_float_to_the_exact_amount(pico: int) -> None:
    assert to_usd(pico) == float(to_decimal(pico))


def test_a_price_carries_its_rates_per_token_worked_out_once():
    price = Price(prompt=Decimal("0.15"), completion=Decimal("0.6"), cache_write=Decimal("0.1875"))
    assert price.rates == Rates(
        prompt=150_000, cached_prompt=150_000, cache_write=187_500, completion=600_000, reasoning=600_000
    )
    # A copy with a part changed has that part's rate, and equality is the prices' own.
    cheaper = dataclasses.replace(price, cached_prompt=Decimal("0.075"))
    assert cheaper.rates.cached_prompt == 75_000
    assert (
        Price(prompt=Decimal("0.150"), completion=Decimal("0.60")).rates
        == Price(prompt=Decimal("0.15"), completion=Decimal("0.6")).rates
    )
    assert "rates" not in repr(price)


@pytest.mark.parametrize("bad", [Decimal("0.0000001"), Decimal("-1")])
def test_a_price_that_cannot_be_rated_exactly_is_refused_as_it_is_made(bad):
    with pytest.raises(PriceError):
        Price(prompt=Decimal("1"), completion=bad)
