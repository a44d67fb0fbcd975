"""Stored content and feedback on the wire: OpenRouter's shapes for /generation/content and
/generation/feedback, and genledger's ``feedback`` extension field of the generations list."""

from __future__ import annotations

from typing import Any

from genledger.api.inbound import load_object
from genledger.core.content import (
    FEEDBACK_CATEGORIES,
    MAX_FEEDBACK_COMMENT,
    FeedbackCategory,
    GenerationContent,
)
from genledger.errors import BadRequest

_FEEDBACK_FIELDS = {"generation_id", "category", "comment"}


def content_json(content: GenerationContent) -> dict[str, Any]:
    """``{"data": {input, output, error}}``: the messages as sent, the first choice's text."""
    error = content.error
    return {
        "data": {
            "input": {"messages": list(content.messages)},
            "output": {"completion": content.completion, "reasoning": content.reasoning},
            "error": None
            if error is None
            else {
                "status": error.status,
                "message": error.message,
                "provider_name": error.provider_name,
                "raw": error.raw,
                "previous_errors": [],
            },
        }
    }


def parse_feedback(raw: bytes) -> tuple[str, FeedbackCategory, str | None]:
    """``(generation_id, category, comment)`` from a ``POST /generation/feedback`` body."""
    body = load_object(raw, empty_is_object=True)
    unknown = sorted(set(body) - _FEEDBACK_FIELDS)
    if unknown:
        raise BadRequest(f"Unknown field '{unknown[0]}'", metadata={"param": unknown[0]})
    generation_id = body.get("generation_id")
    if not isinstance(generation_id, str) or not generation_id.strip():
        raise BadRequest("'generation_id' is required", metadata={"param": "generation_id"})
    category = body.get("category")
    if category not in FEEDBACK_CATEGORIES:
        raise BadRequest(
            f"'category' must be one of {', '.join(FEEDBACK_CATEGORIES)}", metadata={"param": "category"}
        )
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_FEEDBACK_COMMENT):
        raise BadRequest(
            f"'comment' must be a string of at most {MAX_FEEDBACK_COMMENT} characters",
            metadata={"param": "comment"},
        )
    return generation_id.strip(), category, comment
