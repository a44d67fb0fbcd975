"""The price catalog's arithmetic: what a generation costs, exactly."""

from __future__ import annotations

from decimal import Decimal

from genledger.core.money import per_token_pico
from genledger.core.records import record
from genledger.core.usage import Usage


@record
class Price:
    """A model's prices in USD per million tokens.

    Cached prompt reads default to the prompt price, cache writes to the prompt price,
    and reasoning tokens are billed as completion tokens unless priced on their own.
    """

    prompt: Decimal
    completion: Decimal
    cached_prompt: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


@record
class Cost:
    """A generation's cost in picodollars, with the discount prompt caching gave."""

    total: int
    cache_discount: int


@record
class CostParts:
    """A generation's cost in picodollars, part by part: the parts sum to its total."""

    prompt: int
    cached_prompt: int
    cache_write: int
    completion: int
    reasoning: int
    cache_discount: int

    @property
    def total(self) -> int:
        return self.prompt + self.cached_prompt + self.cache_write + self.completion + self.reasoning


def cost_parts(usage: Usage, price: Price) -> CostParts:
    """The exact cost of ``usage`` at ``price``, part by part.

    Prompt tokens read from the cache are billed at the cached price and written ones at
    the cache-write price; the rest at the prompt price. Reasoning tokens are billed at
    the reasoning price when there is one, else as completion tokens.
    """
    prompt_rate = per_token_pico(price.prompt)
    cached_rate = per_token_pico(price.cached_prompt) if price.cached_prompt is not None else prompt_rate
    write_rate = per_token_pico(price.cache_write) if price.cache_write is not None else prompt_rate
    completion_rate = per_token_pico(price.completion)
    reasoning_rate = per_token_pico(price.reasoning) if price.reasoning is not None else completion_rate

    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    plain_prompt = usage.prompt_tokens - cached - written
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    plain_completion = usage.completion_tokens - reasoning
    return CostParts(
        prompt=plain_prompt * prompt_rate,
        cached_prompt=cached * cached_rate,
        cache_write=written * write_rate,
        completion=plain_completion * completion_rate,
        reasoning=reasoning * reasoning_rate,
        cache_discount=cached * (prompt_rate - cached_rate),
    )


def cost(usage: Usage, price: Price) -> Cost:
    """The exact cost of ``usage`` at ``price`` (the sum of :func:`cost_parts`)."""
    parts = cost_parts(usage, price)
    return Cost(total=parts.total, cache_discount=parts.cache_discount)


def worst_case(prompt_tokens: int, max_output_tokens: int, price: Price) -> int:
    """Picodollars a request can cost at most: every token at its dearest rate."""
    prompt_rate = max(
        per_token_pico(p) for p in (price.prompt, price.cached_prompt, price.cache_write) if p is not None
    )
    completion_rate = max(per_token_pico(p) for p in (price.completion, price.reasoning) if p is not None)
    return prompt_tokens * prompt_rate + max_output_tokens * completion_rate


def max_output_within(prompt_tokens: int, budget: int, price: Price) -> int:
    """The most output tokens whose worst case fits ``budget`` picodollars (0: none fit)."""
    prompt_cost = worst_case(prompt_tokens, 0, price)
    completion_rate = max(per_token_pico(p) for p in (price.completion, price.reasoning) if p is not None)
    if budget <= prompt_cost:
        return 0
    if completion_rate == 0:
        return 2**31 - 1  # free output: any max_tokens fits
    return (budget - prompt_cost) // completion_rate
