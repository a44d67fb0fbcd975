"""What a generation said, and what its caller thought of it: stored content and feedback.

Content (the request's messages and the answer's text) is kept only when the configuration or
the key asks for it, for a bounded time and up to a bounded size; it is never logged. Feedback
is a category and an optional comment, one per generation, from the key that made it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from genledger.core.records import record

FeedbackCategory = Literal[
    "latency", "incoherence", "incorrect_response", "formatting", "billing", "api_error", "other"
]
FEEDBACK_CATEGORIES: tuple[FeedbackCategory, ...] = (
    "latency", "incoherence", "incorrect_response", "formatting", "billing", "api_error", "other",
)  # fmt: skip
MAX_FEEDBACK_COMMENT = 2000
DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_CONTENT_BYTES = 256 * 1024


@record
class Feedback:
    generation_id: str
    key_id: str
    category: FeedbackCategory
    comment: str | None
    created_at: datetime


@record
class ContentError:
    """The failure a stream ended with, as the caller was told it."""

    status: int
    message: str
    provider_name: str | None
    raw: str | None


@record
class GenerationContent:
    """The prompt and the answer of one generation."""

    generation_id: str
    key_id: str
    created_at: datetime
    messages: tuple[dict[str, Any], ...]
    completion: str | None
    reasoning: str | None
    error: ContentError | None = None

    def encoded(self) -> bytes:
        """The stored form (JSON), whose length the size bound applies to."""
        error = self.error
        return orjson.dumps(
            {
                "messages": self.messages,
                "completion": self.completion,
                "reasoning": self.reasoning,
                "error": None
                if error is None
                else {
                    "status": error.status,
                    "message": error.message,
                    "provider_name": error.provider_name,
                    "raw": error.raw,
                },
            }
        )

    @classmethod
    def decoded(cls, generation_id: str, key_id: str, created_at: datetime, body: bytes) -> GenerationContent:
        data = orjson.loads(body)
        error = data.get("error")
        return cls(
            generation_id=generation_id,
            key_id=key_id,
            created_at=created_at,
            messages=tuple(data["messages"]),
            completion=data["completion"],
            reasoning=data["reasoning"],
            error=None if error is None else ContentError(**error),
        )


@record
class ContentPolicy:
    """Whether, for how long and up to what size content is kept.

    ``enabled`` is the gateway's default; a key's own ``store_content`` (when not None) wins.
    """

    enabled: bool = False
    retention_days: int = DEFAULT_RETENTION_DAYS
    max_bytes: int = DEFAULT_MAX_CONTENT_BYTES

    def applies_to(self, key_store_content: bool | None) -> bool:
        return self.enabled if key_store_content is None else key_store_content

    def kept_since(self, now: datetime) -> datetime:
        """Content made before this instant has expired."""
        return now - timedelta(days=self.retention_days)

    def fits(self, encoded: bytes) -> bool:
        return len(encoded) <= self.max_bytes
