"""Internal types of a chat completion: what was asked, and what came back whole.

A streamed answer arrives as :mod:`genledger.core.events` instead.
"""

from __future__ import annotations

from dataclasses import field
from decimal import Decimal
from typing import Any, Literal, Protocol

from genledger.core.records import record
from genledger.core.usage import Usage

# OpenAI's finish reasons; anything else a provider sends is kept as the native one.
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "error"})


SortBy = Literal["price", "throughput", "latency"]
SORTS: tuple[SortBy, ...] = ("price", "throughput", "latency")
SUFFIX_SORTS: dict[str, SortBy] = {":floor": "price", ":nitro": "throughput"}
"""OpenRouter's model suffixes that sort a request's endpoints: ``acme/fast:floor``."""


@record
class MaxPrice:
    """OpenRouter's ``provider.max_price``: the dearest prices a caller accepts.

    USD per million tokens for ``prompt`` and ``completion``, USD per request or image for
    ``request``, ``image`` and ``audio`` (genledger charges none of them, so those only bound at zero).
    """

    prompt: Decimal | None = None
    completion: Decimal | None = None
    request: Decimal | None = None
    image: Decimal | None = None
    audio: Decimal | None = None


@record
class ProviderPreferences:
    """OpenRouter's ``provider`` routing object: which endpoints to use, in which order.

    Names match a provider's config key or its display name, ignoring case. ``sort``
    orders the endpoints by price (the catalog's), throughput or latency (measured by this
    gateway); ``sort_partition`` "model" sorts each model's endpoints in the order the
    models were named, "none" all of them together. ``require_parameters`` keeps only the
    endpoints whose provider honours every parameter the request sets.
    """

    order: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: SortBy | None = None
    sort_partition: Literal["model", "none"] = "model"
    max_price: MaxPrice | None = None
    require_parameters: bool = False


NO_PREFERENCES = ProviderPreferences()
"""The preferences of a request that states none: one shared instance (records are immutable),
so that routing can tell such a request by identity."""


class RoutedRequest(Protocol):
    """What routing, admission and the ledger read of any request: chat, embeddings, ...

    ``parameters()`` names the options the request sets that a provider must honour
    (``provider.require_parameters``).
    """

    @property
    def model(self) -> str: ...
    @property
    def fallback_models(self) -> tuple[str, ...]: ...
    @property
    def provider(self) -> ProviderPreferences: ...
    @property
    def user(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def metadata(self) -> dict[str, str] | None: ...
    def parameters(self) -> frozenset[str]: ...


@record
class ChatRequest:
    """A validated chat completion request, independent of the wire format.

    ``messages`` are OpenAI-style message objects (already checked for shape);
    ``params`` holds the remaining sampling options (temperature, tools, ...) that
    providers pass on. ``session_id`` and ``metadata`` attribute the generation in the
    ledger; they are not sent upstream.
    """

    model: str
    messages: tuple[dict[str, Any], ...]
    stream: bool = False
    max_tokens: int | None = None
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences = NO_PREFERENCES
    session_id: str | None = None
    metadata: dict[str, str] | None = None

    def parameters(self) -> frozenset[str]:
        """The options this request sets that a provider must honour."""
        names = set(self.params)
        if self.max_tokens is not None:
            names.add("max_tokens")
        return frozenset(names)

    def choices(self) -> int:
        """How many completions the request asks for (``n``), each up to ``max_tokens``."""
        n = self.params.get("n")
        return n if n else 1

    def prompt_chars(self) -> int:
        """Characters of text in the prompt, for estimates before the upstream answers."""
        total = 0
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                total += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        total += len(part["text"])
        return total


@record
class ToolCall:
    """A function call the model asked for; ``arguments`` is JSON text, as OpenAI sends it."""

    id: str | None
    name: str | None
    arguments: str = ""


@record
class Choice:
    """One answer of a completion (most have one; OpenAI's ``n`` asks for more).

    ``logprobs`` is kept as the provider sent it (its shape is OpenAI's, relayed as is).
    """

    index: int = 0
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    logprobs: Any = None
    stop_sequence: str | None = None  # the stop sequence that ended it, when the provider says


@record
class Completion:
    """A provider's whole answer, in no wire format: the edge renders it for the caller."""

    choices: tuple[Choice, ...]
    usage: Usage | None = None
    upstream_id: str | None = None
    created: int | None = None
    system_fingerprint: str | None = None

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def native_finish_reason(self) -> str | None:
        return self.choices[0].native_finish_reason if self.choices else None


def normalize_finish_reason(native: str | None) -> str | None:
    """Map a provider's finish reason onto OpenAI's vocabulary."""
    if native is None:
        return None
    if native in FINISH_REASONS:
        return native
    return _NATIVE_FINISH.get(native, "stop")


_NATIVE_FINISH = {
    # Anthropic
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    # OpenAI legacy
    "function_call": "tool_calls",
    # Others seen in the wild
    "eos": "stop",
    "MAX_TOKENS": "length",
    "STOP": "stop",
    "SAFETY": "content_filter",
}
