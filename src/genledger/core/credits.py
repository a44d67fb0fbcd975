"""Credit arithmetic for key limits: periods, and what a request may cost at most."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from genledger.core.chat import ChatRequest
from genledger.core.pricing import Price, worst_case

LimitReset = Literal["daily", "weekly", "monthly"]
LIMIT_RESETS: tuple[LimitReset, ...] = ("daily", "weekly", "monthly")
DEFAULT_MAX_OUTPUT_TOKENS = 4096
DEFAULT_IMAGE_PROMPT_TOKENS = 50_000
"""Above what any image counts today: up to about 1,600 tokens on Anthropic, 1,500 on gpt-4o,
2,500 on gpt-4.1-mini, 48,200 on gpt-4o-mini (which prices its tokens lower)."""
_TOKENS_PER_MESSAGE = 8  # role and separator tokens a chat template adds


class Bounded(Protocol):
    """A request other than chat, which bounds its own prompt (embeddings, prompt completions)."""

    @property
    def max_tokens(self) -> int | None: ...
    def prompt_tokens_bound(self) -> int: ...
    def choices(self) -> int: ...


def period_start(reset: str | None, now: datetime) -> datetime | None:
    """Start (UTC) of the limit period containing ``now``; None for a limit that never resets.

    Periods start at midnight UTC: every day, every Monday, the first of every month.
    """
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        return midnight
    if reset == "weekly":
        return midnight - timedelta(days=midnight.weekday())
    if reset == "monthly":
        return midnight.replace(day=1)
    return None


def next_period_start(reset: str | None, now: datetime) -> datetime | None:
    """When the limit period containing ``now`` ends (UTC); None for a limit that never resets."""
    start = period_start(reset, now)
    if start is None:
        return None
    if reset == "daily":
        return start + timedelta(days=1)
    if reset == "weekly":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def prompt_tokens_upper_bound(request: ChatRequest) -> int:
    """At least as many tokens as the prompt can have: every token covers one byte or more.

    Messages go upstream as the caller sent them, so every field but the role counts (tool
    calls, names, the legacy ``function_call``, ...): its JSON, whose quotes, escapes and
    spaces only add bytes to the text inside.
    """
    total = 0
    for message in request.messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "role" or value is None:
                continue
            if key == "content" and isinstance(value, str):
                total += len(value.encode())
            else:
                total += len(json.dumps(value).encode())
    for value in request.params.values():
        # Tools, a response_format's schema, ...: objects and arrays the model reads besides the
        # messages (numbers and flags are options).
        if isinstance(value, dict | list):
            total += len(json.dumps(value).encode())
    return total


def image_parts(request: ChatRequest) -> int:
    """The image parts of the messages (a user's, or a tool result's)."""
    return sum(
        1
        for message in request.messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    )


def max_output_tokens(request: ChatRequest | Bounded, model_max: int | None, default: int) -> int:
    """The most completion tokens each of the request's choices can produce."""
    if request.max_tokens is not None:
        return request.max_tokens if model_max is None else min(request.max_tokens, model_max)
    return model_max or default


def output_tokens_bound(request: ChatRequest | Bounded, model_max: int | None, default: int) -> int:
    """The most completion tokens the request can produce: each of its choices (``n``, or a
    prompt completion's ``best_of``) up to ``max_tokens``, all of them billed."""
    return max_output_tokens(request, model_max, default) * request.choices()


def prompt_bound(request: ChatRequest | Bounded, *, image_tokens: int = 0) -> int:
    """At least as many tokens as the prompt of any request can have, each image counted as
    ``image_tokens`` more than its URL's bytes (an image is billed by its pixels); 0 leaves
    images at their bytes, as estimates of what a prompt counts do."""
    if isinstance(request, ChatRequest):
        return prompt_tokens_upper_bound(request) + image_tokens * image_parts(request)
    return request.prompt_tokens_bound()


def reservation(
    request: ChatRequest | Bounded,
    price: Price,
    model_max_output: int | None,
    default_max_output: int,
    *,
    image_tokens: int = 0,
) -> int:
    """Picodollars to reserve before calling the upstream: the request's worst-case cost."""
    return worst_case(
        prompt_bound(request, image_tokens=image_tokens),
        output_tokens_bound(request, model_max_output, default_max_output),
        price,
    )
