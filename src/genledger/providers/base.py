"""The provider interface: ``complete`` for a whole answer, ``stream`` for chunks.

Adapters translate their wire format into OpenAI's chat completion shapes at this edge,
and every failure into :class:`~genledger.core.failures.UpstreamFailure`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from genledger.core.chat import ChatRequest, Completion
from genledger.core.usage import Usage


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One request to one provider: the caller's request and the upstream's model name.

    ``max_output_tokens`` is the catalog's limit for the model, for upstreams that need a
    ``max_tokens`` when the caller sent none.
    """

    request: ChatRequest
    upstream_model: str
    max_output_tokens: int | None = None


class ChatStream:
    """A streamed answer: OpenAI ``chat.completion.chunk`` dicts, and what they told so far.

    The adapter's iterator updates ``upstream_id``, ``usage``, ``finish_reason`` and
    ``native_finish_reason`` as chunks arrive, so the gateway knows the usage even when
    the stream ends early. Iterating may raise ``UpstreamFailure``.
    """

    def __init__(self) -> None:
        self.upstream_id: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self._chunks: AsyncIterator[dict[str, Any]] | None = None

    def attach(self, chunks: AsyncIterator[dict[str, Any]]) -> ChatStream:
        self._chunks = chunks
        return self

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        assert self._chunks is not None, "ChatStream used before attach()"
        return self._chunks

    async def aclose(self) -> None:
        """Stop the upstream call and release its connection."""
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class Provider(Protocol):
    """An upstream that answers chat completions."""

    name: str
    """The provider's key in the config."""
    display_name: str
    """What generations record as ``provider_name``."""

    async def complete(self, call: UpstreamCall) -> Completion:
        """The whole answer. Raises ``UpstreamFailure``."""
        ...

    async def stream(self, call: UpstreamCall) -> ChatStream:
        """Start a streamed answer; returns once the upstream has accepted the request.

        Raises ``UpstreamFailure`` when it did not.
        """
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...
