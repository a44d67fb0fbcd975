"""Token usage, normalized from what each provider reports."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from genledger.core.money import from_usd
from genledger.core.records import record

MAX_REPORTED_TOKENS = 100_000_000
"""More tokens than any one generation has (today's longest contexts are a few million): a
provider reporting more is not believed. Every count stays below it, so a cost at the dearest
price the catalog takes (``money.MAX_PRICE_PER_MILLION``) fits the ledger's 64-bit integers."""
MAX_REPORTED_COST_PICO = 10**18  # a million USD: beyond it, an upstream's ``usage.cost`` is not believed


@record
class Usage:
    """Tokens of one generation as the provider reported them.

    ``prompt_tokens`` includes cached reads (OpenAI's convention); ``cached_tokens`` and
    ``cache_write_tokens`` are the parts of it that were read from or written to the
    provider's prompt cache. ``reasoning_tokens`` are part of ``completion_tokens``.
    ``upstream_cost_pico`` is what the upstream said the call cost (an OpenRouter-compatible
    upstream's ``usage.cost``), None when it did not say.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    completion_image_tokens: int = 0
    upstream_cost_pico: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def believable(usage: Usage) -> Usage | None:
    """``usage``, or None (no report: the gateway estimates) when a count is beyond
    :data:`MAX_REPORTED_TOKENS`; an absurd upstream cost alone is dropped."""
    counts = (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.completion_image_tokens,
    )
    return None if _impossible(counts) else usage


def _impossible(counts: tuple[int, ...]) -> bool:
    """Whether a report's counts hold one no generation has (:data:`MAX_REPORTED_TOKENS`)."""
    return max(counts) > MAX_REPORTED_TOKENS


def _int(value: Any) -> int:
    if value.__class__ is int:  # what a JSON count parses to (a bool's class is bool)
        return value if value > 0 else 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


def _counted(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cost_pico(value: Any) -> int | None:
    """``usage.cost`` (USD, a JSON number) in picodollars, rounded to the nearest; None if absent
    or not a non-negative finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        usd = Decimal(str(value))
    except InvalidOperation:
        return None
    if not usd.is_finite() or usd < 0:
        return None
    pico = from_usd(value)
    return pico if pico <= MAX_REPORTED_COST_PICO else None


def from_openai(usage: Any) -> Usage | None:
    """Normalize an OpenAI-style ``usage`` object; ``None`` when there is none, or when it
    counts neither the prompt nor the completion (``{"prompt_tokens": null, ...}``, or zero
    for both, which no generation is: every prompt has a token): that is no report, and the
    gateway estimates."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    # (Two class checks first: the counts are ints in nearly every report.)
    if (
        prompt.__class__ is not int
        and completion.__class__ is not int
        and not (_counted(prompt) or _counted(completion))
    ):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    if not isinstance(completion_details, dict):
        completion_details = {}
    counts = (
        _int(prompt),
        _int(completion),
        _int(prompt_details.get("cached_tokens")),
        _int(prompt_details.get("cache_write_tokens")),
        _int(completion_details.get("reasoning_tokens")),
        _int(completion_details.get("image_tokens")),
    )
    if _impossible(counts):  # as believable() judges, without a Usage made first
        return None
    if not (counts[0] or counts[1]):  # nothing read, nothing written: a server's placeholder
        return None
    return Usage(*counts, upstream_cost_pico=_cost_pico(usage.get("cost")))
