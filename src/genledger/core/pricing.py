"""The price catalog's arithmetic: what a generation costs, exactly."""

from __future__ import annotations

from dataclasses import field
from decimal import Decimal

from genledger.core.money import per_token_pico
from genledger.core.records import record
from genledger.core.usage import Usage


@record
class Rates:
    """A price in picodollars per token, part by part, its defaults resolved."""

    prompt: int
    cached_prompt: int
    cache_write: int
    completion: int
    reasoning: int


@record
class Price:
    """A model's prices in USD per million tokens.

    Cached prompt reads default to the prompt price, cache writes to the prompt price,
    and reasoning tokens are billed as completion tokens unless priced on their own.

    ``rates`` are the same prices in picodollars per token, worked out once, as the price is
    made (a price :func:`per_token_pico` refuses is refused here): every request is priced
    with them, and five lookups of a Decimal in a cache, which hashes it, cost about a
    fiftieth of a chat completion's instructions.
    """

    prompt: Decimal
    completion: Decimal
    cached_prompt: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    rates: Rates = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prompt = per_token_pico(self.prompt)
        completion = per_token_pico(self.completion)
        rates = Rates(
            prompt=prompt,
            cached_prompt=prompt if self.cached_prompt is None else per_token_pico(self.cached_prompt),
            cache_write=prompt if self.cache_write is None else per_token_pico(self.cache_write),
            completion=completion,
            reasoning=completion if self.reasoning is None else per_token_pico(self.reasoning),
        )
        object.__setattr__(self, "rates", rates)  # derived: not a field anyone passes


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
    rates = price.rates
    prompt_rate = rates.prompt
    cached_rate = rates.cached_prompt
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    plain_prompt = usage.prompt_tokens - cached - written
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    plain_completion = usage.completion_tokens - reasoning
    return CostParts(
        prompt=plain_prompt * prompt_rate,
        cached_prompt=cached * cached_rate,
        cache_write=written * rates.cache_write,
        completion=plain_completion * rates.completion,
        reasoning=reasoning * rates.reasoning,
        cache_discount=cached * (prompt_rate - cached_rate),
    )


def cost(usage: Usage, price: Price) -> Cost:
    """The exact cost of ``usage`` at ``price`` (the sum of :func:`cost_parts`)."""
    parts = cost_parts(usage, price)
    return Cost(total=parts.total, cache_discount=parts.cache_discount)


def worst_case(prompt_tokens: int, max_output_tokens: int, price: Price) -> int:
    """Picodollars a request can cost at most: every token at its dearest rate."""
    rates = price.rates
    prompt_rate = max(rates.prompt, rates.cached_prompt, rates.cache_write)
    completion_rate = max(rates.completion, rates.reasoning)
    return prompt_tokens * prompt_rate + max_output_tokens * completion_rate


def max_output_within(prompt_tokens: int, budget: int, price: Price) -> int:
    """The most output tokens whose worst case fits ``budget`` picodollars (0: none fit)."""
    prompt_cost = worst_case(prompt_tokens, 0, price)
    completion_rate = max(price.rates.completion, price.rates.reasoning)
    if budget <= prompt_cost:
        return 0
    if completion_rate == 0:
        return 2**31 - 1  # free output: any max_tokens fits
    return (budget - prompt_cost) // completion_rate
