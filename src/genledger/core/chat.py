"""Internal types of a chat completion: what was asked, and what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genledger.core.usage import Usage

# OpenAI's finish reasons; anything else a provider sends is kept as the native one.
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "error"})


@dataclass(frozen=True, slots=True)
class ProviderPreferences:
    """OpenRouter's ``provider`` routing object: which endpoints to use, in which order.

    Names match a provider's config key or its display name, ignoring case.
    """

    order: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion request, independent of the wire format.

    ``messages`` are OpenAI-style message objects (already checked for shape);
    ``params`` holds the remaining sampling options (temperature, tools, ...) that
    providers pass on.
    """

    model: str
    messages: tuple[dict[str, Any], ...]
    stream: bool = False
    max_tokens: int | None = None
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences = field(default_factory=ProviderPreferences)

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


@dataclass(slots=True)
class Completion:
    """A provider's finished answer, already in the OpenAI ``chat.completion`` shape.

    ``body`` is the response object the caller will receive; the gateway replaces its
    ``id`` with the generation id and adds the cost to its ``usage``.
    """

    body: dict[str, Any]
    usage: Usage | None
    finish_reason: str | None
    native_finish_reason: str | None
    upstream_id: str | None


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
