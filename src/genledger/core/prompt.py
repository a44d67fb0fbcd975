"""Internal type of a legacy prompt completion (OpenAI's ``/completions``).

The answer is a :class:`~genledger.core.chat.Completion` whose choices carry ``content``
(the completed text), or a stream of :mod:`genledger.core.events`, as for chat.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from genledger.core.chat import NO_PREFERENCES, ProviderPreferences
from genledger.core.records import record


@record
class PromptRequest:
    """A validated prompt completion request; ``params`` are passed on as they are."""

    model: str
    prompt: str
    stream: bool = False
    max_tokens: int | None = None
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences = NO_PREFERENCES
    session_id: str | None = None
    metadata: dict[str, str] | None = None

    def parameters(self) -> frozenset[str]:
        names = set(self.params)
        if self.max_tokens is not None:
            names.add("max_tokens")
        return frozenset(names)

    def choices(self) -> int:
        """How many completions the upstream generates (and bills): ``best_of`` of them when
        given, of which ``n`` are returned."""
        return max(self.params.get("n") or 1, self.params.get("best_of") or 1)

    def prompt_tokens_bound(self) -> int:
        """At least as many tokens as the prompt has (a token covers one byte or more)."""
        return len(self.prompt.encode())
