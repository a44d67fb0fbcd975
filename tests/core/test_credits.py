from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genledger.core.chat import ChatRequest
from genledger.core.credits import (
    max_output_tokens,
    output_tokens_bound,
    period_start,
    prompt_bound,
    prompt_tokens_upper_bound,
    reservation,
)
from genledger.core.pricing import Price
from genledger.limits import gcra
from tests.prompts import prompt_bytes

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


def test_every_choice_is_reserved_up_to_max_tokens():
    """``n`` completions (a prompt completion's ``best_of``) are all generated and billed."""
    from genledger.core.prompt import PromptRequest

    price = Price(prompt=Decimal("0"), completion=Decimal("0.6"))
    chat = ChatRequest(
        model="m", messages=({"role": "user", "content": "abcd"},), max_tokens=10, params={"n": 8}
    )
    assert chat.choices() == 8
    assert reservation(chat, price, None, 4096) == 8 * 10 * 600_000
    assert output_tokens_bound(chat, 5, 4096) == 8 * 5
    assert max_output_tokens(chat, None, 4096) == 10  # each choice's own bound
    prompt = PromptRequest(model="m", prompt="abcd", max_tokens=10, params={"n": 2, "best_of": 5})
    assert prompt.choices() == 5 and reservation(prompt, price, None, 4096) == 5 * 10 * 600_000
    assert PromptRequest(model="m", prompt="abcd", params={"n": 3}).choices() == 3


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


texts = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
images = st.fixed_dictionaries({"url": texts}, optional={"detail": texts})
audio = st.fixed_dictionaries({"data": texts, "format": texts})
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": images}),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": audio}),
)
functions = st.fixed_dictionaries({"name": texts, "arguments": texts})
tool_calls = st.lists(
    st.fixed_dictionaries({"id": texts, "type": st.just("function"), "function": functions}), max_size=3
)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])},
    optional={
        "content": st.none() | texts | st.lists(parts, max_size=4),
        "name": texts,
        "tool_calls": tool_calls,
        "tool_call_id": texts,
        "function_call": functions,  # the legacy form of tool_calls, still accepted upstream
        "refusal": texts,
    },
)
tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": texts}, optional={"description": texts, "parameters": json_values}
            ),
        }
    ),
    max_size=3,
)


@given(st.lists(messages, min_size=1, max_size=5), st.none() | tools)
def test_the_prompt_bound_covers_every_byte_the_upstream_reads(messages, tools):
    request = ChatRequest(
        model="m", messages=tuple(messages), params={} if tools is None else {"tools": tools}
    )
    assert prompt_tokens_upper_bound(request) >= prompt_bytes(request.messages, request.params)


LONG = "Zürich, 12°C ☁️ " * 20  # 440 bytes of UTF-8, from 320 characters


@pytest.mark.parametrize(
    ("message", "params"),
    [
        ({"role": "user", "content": [{"type": "text", "text": LONG}]}, {}),
        ({"role": "user", "content": "x", "name": LONG}, {}),
        (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w", "arguments": LONG}}],
            },
            {},
        ),
        ({"role": "tool", "content": "x", "tool_call_id": LONG}, {}),
        ({"role": "assistant", "content": None, "function_call": {"name": "w", "arguments": LONG}}, {}),
        (
            {"role": "user", "content": "x"},
            {"tools": [{"type": "function", "function": {"name": "w", "description": LONG}}]},
        ),
    ],
    ids=["content parts", "name", "tool_calls", "tool_call_id", "function_call", "tools"],
)
def test_each_part_of_the_prompt_raises_the_bound_by_at_least_its_bytes(message, params):
    bare = ChatRequest(model="m", messages=({"role": message["role"], "content": "x"},))
    full = ChatRequest(model="m", messages=(message,), params=params)
    # Less the one byte of the bare message's content, which some of these replace.
    assert prompt_tokens_upper_bound(full) - prompt_tokens_upper_bound(bare) >= len(LONG.encode()) - 1


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}


def test_each_image_is_reserved_as_the_most_tokens_an_image_may_count():
    """An image is billed by its pixels (up to ~1,600 tokens on Anthropic, ~48,000 on
    gpt-4o-mini), not by the bytes of its URL: the bound counts each at ``image_tokens``."""
    question = {"type": "text", "text": "what?"}
    text = ChatRequest(model="m", messages=({"role": "user", "content": [question]},))
    one = ChatRequest(model="m", messages=({"role": "user", "content": [question, IMAGE]},))
    two = ChatRequest(
        model="m",
        messages=(
            {"role": "user", "content": [IMAGE]},
            {"role": "tool", "tool_call_id": "t", "content": [IMAGE]},  # a tool result's image
        ),
    )
    assert prompt_bound(one, image_tokens=2_000) - prompt_bound(text, image_tokens=2_000) >= 2_000
    assert prompt_bound(two, image_tokens=2_000) >= 2 * 2_000
    assert prompt_bound(one, image_tokens=2_000) - prompt_bound(one) == 2_000  # estimates count bytes
    price = Price(prompt=Decimal("1"), completion=Decimal("0"))
    assert reservation(one, price, None, 4096, image_tokens=2_000) >= 2_000 * 1_000_000


def test_the_prompt_bound_counts_a_response_format_schema():
    """A structured output's schema is read by the model as prompt, as tools are."""
    schema = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"description": LONG}}}
    bare = ChatRequest(model="m", messages=({"role": "user", "content": "x"},))
    full = ChatRequest(model="m", messages=bare.messages, params={"response_format": schema})
    assert prompt_tokens_upper_bound(full) - prompt_tokens_upper_bound(bare) >= len(LONG.encode())
