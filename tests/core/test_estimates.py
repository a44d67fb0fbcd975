"""Estimates for a stream cut short before its provider reported usage."""

from __future__ import annotations

import pytest

from genledger.core import estimates
from genledger.core.chat import ChatRequest
from genledger.core.credits import prompt_bound
from genledger.core.generation import estimated_counts
from genledger.core.prompt import PromptRequest
from genledger.core.usage import Usage


def chat(*contents: str) -> ChatRequest:
    return ChatRequest(model="m", messages=tuple({"role": "user", "content": c} for c in contents))


def test_a_prompt_is_estimated_at_a_quarter_of_its_bound_rounded_up():
    request = chat("x" * 400, "y" * 3)
    assert prompt_bound(request) == 400 + 3 + 2 * 8  # its bytes and each message's overhead
    assert estimates.prompt_tokens(request) == 105  # 419 / 4, rounded up
    legacy = PromptRequest(model="m", prompt="é" * 10)  # 20 bytes
    assert estimates.prompt_tokens(legacy) == 5


@pytest.mark.parametrize(
    ("characters", "pieces", "most", "expected"),
    [
        (0, 0, 100, 0),
        (1, 1, 100, 1),
        (41, 3, 100, 11),  # a quarter of the characters, rounded up
        (20, 20, 100, 20),  # a piece is at least a token (a character each, as Chinese streams)
        (4000, 100, 256, 256),  # never more than the request allowed
    ],
)
def test_a_completion_is_estimated_from_what_was_relayed(characters, pieces, most, expected):
    assert estimates.completion_tokens(characters, pieces, most) == expected


def test_what_the_provider_reported_is_kept_where_it_says_more():
    assert estimates.cut_short(None, 30, 7) == Usage(prompt_tokens=30, completion_tokens=7)
    # Anthropic tells the prompt's counts (and a first output token) as the stream begins.
    early = Usage(prompt_tokens=154, completion_tokens=1, cached_tokens=100, cache_write_tokens=4)
    assert estimates.cut_short(early, 111, 9) == Usage(
        prompt_tokens=154, completion_tokens=9, cached_tokens=100, cache_write_tokens=4
    )
    ahead = Usage(prompt_tokens=10, completion_tokens=12, reasoning_tokens=5, upstream_cost_pico=99)
    cut = estimates.cut_short(ahead, 3, 4)
    assert (cut.prompt_tokens, cut.completion_tokens, cut.reasoning_tokens) == (10, 12, 5)
    assert cut.upstream_cost_pico is None  # what the provider charged is not known before its end


def test_estimated_counts_keep_native_counts_only_for_what_the_provider_reported():
    usage = Usage(prompt_tokens=154, completion_tokens=9, cached_tokens=100)
    counts = estimated_counts(usage, Usage(prompt_tokens=154, completion_tokens=1, cached_tokens=100))
    assert (counts["tokens_prompt"], counts["tokens_completion"]) == (154, 9)
    assert (counts["native_tokens_prompt"], counts["native_tokens_cached"]) == (154, 100)
    assert counts["native_tokens_completion"] is None and counts["native_tokens_reasoning"] is None
    nothing = estimated_counts(Usage(prompt_tokens=5, completion_tokens=2), None)
    assert (nothing["tokens_prompt"], nothing["tokens_completion"]) == (5, 2)
    assert all(nothing[name] is None for name in nothing if name.startswith("native_"))  # type: ignore[literal-required]
