from datetime import UTC, datetime
from decimal import Decimal

import pytest

from genledger.core.chat import ChatRequest
from genledger.core.credits import max_output_tokens, period_start, prompt_tokens_upper_bound, reservation
from genledger.core.pricing import Price
from genledger.limits import gcra

NOW = datetime(2026, 11, 25, 19, 38, 27, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("reset", "start"),
    [
        ("daily", datetime(2026, 11, 25, tzinfo=UTC)),
        ("weekly", datetime(2026, 11, 23, tzinfo=UTC)),
        ("monthly", datetime(2026, 11, 1, tzinfo=UTC)),
        (None, None),
    ],
)
def test_periods_start_at_utc_midnight(reset, start):
    assert period_start(reset, NOW) == start


def test_the_prompt_bound_is_never_below_the_bytes():
    request = ChatRequest(model="m", messages=({"role": "user", "content": "héllo wörld"},))
    assert prompt_tokens_upper_bound(request) >= len("héllo wörld".encode())


def test_max_output_tokens_prefers_the_request_within_the_model_limit():
    request = ChatRequest(model="m", messages=({"role": "user", "content": "x"},), max_tokens=50)
    assert max_output_tokens(request, None, 4096) == 50
    assert max_output_tokens(request, 20, 4096) == 20
    unbounded = ChatRequest(model="m", messages=({"role": "user", "content": "x"},))
    assert max_output_tokens(unbounded, 1000, 4096) == 1000
    assert max_output_tokens(unbounded, None, 4096) == 4096


def test_reservation_is_the_worst_case():
    request = ChatRequest(model="m", messages=({"role": "user", "content": "abcd"},), max_tokens=10)
    price = Price(prompt=Decimal("0"), completion=Decimal("0.6"))
    assert reservation(request, price, None, 4096) == 10 * 600_000


def test_gcra_allows_the_limit_then_refuses_with_the_wait():
    tat, now = None, 1_000_000.0
    for expected_remaining in range(9, -1, -1):
        outcome = gcra.take(tat, now, limit=10)
        assert outcome.allowed and outcome.remaining == expected_remaining
        tat = outcome.tat
    refused = gcra.take(tat, now, limit=10)
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after_ms == pytest.approx(6_000)
    assert gcra.take(tat, now + 6_000, limit=10).allowed


def test_tokens_are_debited_after_the_fact():
    now = 0.0
    assert gcra.exhausted(None, now, limit=100).allowed
    tat = gcra.debit(None, now, limit=100, cost=150)  # one request may overshoot
    refused = gcra.exhausted(tat, now, limit=100)
    assert not refused.allowed and refused.retry_after_ms > 0
    assert gcra.exhausted(tat, now + refused.retry_after_ms, limit=100).allowed
