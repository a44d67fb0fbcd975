"""The error envelope every route but ``/messages`` answers with, and Anthropic's for ``/messages``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from genledger.api.schemas._base import Open


class ErrorBody(Open):
    code: int = Field(description="The HTTP status.")
    message: str
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Details: `param` for a bad parameter; `provider_name` and `raw` for an upstream "
        "failure; `limit_source` for a 402 or a 429.",
    )


class ErrorEnvelope(Open):
    """`{"error": {"code", "message", "metadata"}}`, with `code` equal to the HTTP status."""

    error: ErrorBody


class AnthropicErrorBody(Open):
    type: str
    message: str


class AnthropicError(Open):
    """Anthropic's error shape, which `/messages` answers with."""

    type: Literal["error"]
    error: AnthropicErrorBody
