"""The provider interface: ``complete`` for a whole answer, ``stream`` for typed events.

Adapters translate their wire format into :class:`~genledger.core.chat.Completion` and
:mod:`genledger.core.events` at this edge, and every failure into
:class:`~genledger.core.failures.UpstreamFailure`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from genledger.core.chat import ChatRequest, Completion
from genledger.core.events import ProviderEvent

EventStream = AsyncGenerator[ProviderEvent, None]
"""A streamed answer. Iterating may raise ``UpstreamFailure``; ``aclose()`` stops the
upstream call and releases its connection."""


@dataclass(frozen=True, slots=True)
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
