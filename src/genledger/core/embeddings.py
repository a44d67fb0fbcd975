"""Internal types of an embeddings request (OpenAI's ``/embeddings``) and its answer."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from genledger.core.chat import NO_PREFERENCES, ProviderPreferences
from genledger.core.records import record
from genledger.core.usage import Usage

EmbeddingInput = tuple[str, ...] | tuple[tuple[int, ...], ...]
"""Texts, or texts already tokenized (arrays of token ids); never mixed."""


@record
class EmbeddingRequest:
    """A validated embeddings request, independent of the wire format.

    ``params`` holds options passed on to the provider as they are (``input_type``).
    The encoding the caller asked for (float or base64) is the edge's business: providers
    always answer floats.
    """

    model: str
    inputs: EmbeddingInput
    dimensions: int | None = None
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    fallback_models: tuple[str, ...] = ()
    provider: ProviderPreferences = NO_PREFERENCES
    session_id: str | None = None
    metadata: dict[str, str] | None = None

    max_tokens = 0
    """Embeddings produce no completion tokens: what a reservation covers beyond the input."""

    def parameters(self) -> frozenset[str]:
        names = set(self.params)
        if self.dimensions is not None:
            names.add("dimensions")
        return frozenset(names)

    def choices(self) -> int:
        return 1

    def prompt_tokens_bound(self) -> int:
        """At least as many tokens as the input has: a token covers one byte or more of text,
        and a token array is its length."""
        return sum(len(item.encode()) if isinstance(item, str) else len(item) for item in self.inputs)


@record
class Embeddings:
    """A provider's answer: one vector per input, in input order."""

    vectors: tuple[tuple[float, ...], ...]
    usage: Usage | None = None
    upstream_id: str | None = None


@record
class EmbeddingAnswer:
    """Embeddings served and recorded: what the edge renders."""

    generation_id: str
    model: str
    provider_name: str
    embeddings: Embeddings
    cost_pico: int
