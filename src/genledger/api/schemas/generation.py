"""The generation object and the routes around it: ``/generation`` (+ content, feedback), ``/generations``.

:class:`Generation` is derived from :class:`genledger.core.generation.Generation`, the one
definition, exactly as :func:`genledger.api.generation_wire.generation_json` renders it:
each shown attribute under its contract name, money (``*_pico``) as USD numbers, times as
ISO 8601 strings, then the contract's constants (typed by :data:`CONSTANT_TYPES`, since
their value is always null or false). ``tests/openapi`` pins it to the reference's table.
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from genledger.api.generation_wire import ITEM_KEYS, LEDGER_KEYS
from genledger.api.schemas._base import Closed
from genledger.core import generation as definition
from genledger.core.content import FEEDBACK_CATEGORIES, MAX_FEEDBACK_COMMENT

CONSTANT_TYPES: dict[str, Any] = {
    "app_id": float | None,
    "moderation_latency": float | None,
    "num_input_audio_prompt": int | None,
    "num_media_completion": int | None,
    "num_search_results": int | None,
    "is_byok": bool,
    "preset_id": str | None,
    "service_tier": str | None,
    "web_search_engine": str | None,
    "workspace_id": str | None,
    "num_fetches": int | None,
    "response_cache_source_id": str | None,
}
"""The wire type of each of ``CONTRACT_CONSTANTS`` (the reference's)."""


class ProviderAttempt(Closed):
    """One call to one provider endpoint (``ProviderAttempt.to_json``)."""

    status: int
    provider_name: str | None
    latency: float | None
    id: str | None
    is_byok: bool


def _wire_type(attribute: str, hint: Any) -> Any:
    """The JSON type of an attribute as ``generation_json`` renders it."""
    nullable = type(None) in typing.get_args(hint)
    if attribute.endswith("_pico"):
        base: Any = float
    elif attribute == "provider_responses":
        base = list[ProviderAttempt]
    else:
        base = next((arg for arg in typing.get_args(hint) if arg is not type(None)), hint)
        if base is datetime:
            base = datetime
    return base | None if nullable else base


def _generation_model() -> type[BaseModel]:
    hints = typing.get_type_hints(definition.Generation)
    by_name = {
        definition.contract_name(a): _wire_type(a, hints[a])
        for a in definition.FIELDS
        if a not in definition.NOT_IN_CONTRACT
    }
    by_name.update(CONSTANT_TYPES)
    fields: dict[str, Any] = {name: (by_name[name], ...) for name in ITEM_KEYS}
    model: type[BaseModel] = create_model(
        "Generation",
        __config__=ConfigDict(extra="forbid"),
        __doc__="The contract's generation object: every key present, null where unknown; costs in USD.",
        **fields,
    )
    return model


Generation = _generation_model()


class Feedback(Closed):
    category: str
    comment: str | None
    created_at: datetime


class Adjustment(Closed):
    amount: float = Field(description="USD; negative for a refund.")
    from_version: int | None
    to_version: int | None
    reason: str
    created_at: datetime


def _listed_model() -> type[BaseModel]:
    extensions: dict[str, Any] = {
        "price_version": (int | None, ...),
        "adjustments": (list[Adjustment], ...),
        "adjusted_usage": (float, Field(description="`usage` with the adjustments, USD.")),
        "feedback": (Feedback | None, ...),
    }
    assert set(extensions) == set(LEDGER_KEYS)  # the list's renderer and this agree
    model: type[BaseModel] = create_model(
        "ListedGeneration",
        __base__=Generation,
        __doc__="A list item: the generation object, then the ledger's extension keys.",
        **extensions,
    )
    return model


ListedGeneration = _listed_model()


class GenerationData(Generation):  # type: ignore[misc, valid-type]
    """The generation object with its `feedback` (null when none was given)."""

    feedback: Feedback | None


class GenerationResponse(Closed):
    data: GenerationData


class GenerationPage(Closed):
    data: list[ListedGeneration]  # type: ignore[valid-type]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class ContentError(Closed):
    status: int | None
    message: str | None
    provider_name: str | None
    raw: Any
    previous_errors: list[Any]


class ContentInput(Closed):
    messages: list[Any]


class ContentOutput(Closed):
    completion: str | None
    reasoning: str | None


class Content(Closed):
    input: ContentInput
    output: ContentOutput
    error: ContentError | None


class ContentResponse(Closed):
    data: Content


class FeedbackRequest(Closed):
    generation_id: str = Field(min_length=1)
    category: Literal[FEEDBACK_CATEGORIES]  # type: ignore[valid-type]
    comment: str | None = Field(default=None, max_length=MAX_FEEDBACK_COMMENT)


class Success(Closed):
    success: Literal[True]


class SuccessResponse(Closed):
    data: Success
