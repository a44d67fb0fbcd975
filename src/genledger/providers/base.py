"""The provider interface: ``complete`` for a whole answer, ``stream`` for typed events.

Adapters translate their wire format into :class:`~genledger.core.chat.Completion` and
:mod:`genledger.core.events` at this edge, and every failure into
:class:`~genledger.core.failures.UpstreamFailure`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable

from genledger.core.chat import ChatRequest, Completion
from genledger.core.embeddings import EmbeddingRequest, Embeddings
from genledger.core.events import ProviderEvent
from genledger.core.prompt import PromptRequest
from genledger.core.records import record

EventStream = AsyncGenerator[ProviderEvent, None]
"""A streamed answer. Iterating may raise ``UpstreamFailure``; ``aclose()`` stops the
upstream call and releases its connection."""


@record
class UpstreamCall:
    """One request to one provider: the caller's request and the upstream's model name.

    ``max_output_tokens`` is the catalog's limit for the model, for upstreams that need a
    ``max_tokens`` when the caller sent none.
    """

    request: ChatRequest
    upstream_model: str
    max_output_tokens: int | None = None


class Provider(Protocol):
    """An upstream that answers chat completions."""

    name: str
    """The provider's key in the config."""
    display_name: str
    """What generations record as ``provider_name``."""

    async def complete(self, call: UpstreamCall) -> Completion:
        """The whole answer. Raises ``UpstreamFailure``."""
        ...

    async def stream(self, call: UpstreamCall) -> EventStream:
        """Start a streamed answer; returns once the upstream has accepted the request.

        Raises ``UpstreamFailure`` when it did not.
        """
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...


@record
class EmbeddingCall:
    """One embeddings request to one provider."""

    request: EmbeddingRequest
    upstream_model: str


@record
class PromptCall:
    """One legacy prompt completion to one provider (``max_output_tokens`` as for chat)."""

    request: PromptRequest
    upstream_model: str
    max_output_tokens: int | None = None


@runtime_checkable
class Embedder(Protocol):
    """A provider that also answers embeddings; routing sends embeddings only to these."""

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        """One vector per input, in order. Raises ``UpstreamFailure``."""
        ...


@runtime_checkable
class PromptCompleter(Protocol):
    """A provider that also answers legacy prompt completions (OpenAI's ``/completions``)."""

    async def complete_prompt(self, call: PromptCall) -> Completion:
        """The whole answer; each choice's ``content`` is its text. Raises ``UpstreamFailure``."""
        ...

    async def stream_prompt(self, call: PromptCall) -> EventStream:
        """Start a streamed answer, as :meth:`Provider.stream` does."""
        ...


def supported_parameters(provider: Provider) -> frozenset[str] | None:
    """The request parameters ``provider`` honours, for ``provider.require_parameters``.

    A provider declares them in a ``supported_parameters`` attribute; one without it
    passes every parameter on to its upstream (None: all of them).
    """
    declared: frozenset[str] | None = getattr(provider, "supported_parameters", None)
    return declared
