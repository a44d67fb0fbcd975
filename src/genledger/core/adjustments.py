"""Corrections as entries: re-rating a generation under another price version.

Nothing recorded is ever updated or deleted. A correction is an :class:`Adjustment`, a new
entry that adds (or, negative, takes back) picodollars for one generation; a generation's
cost is its recorded charge plus the sum of its adjustments. Re-rating is idempotent: once a
generation's cost equals its cost under a version, re-rating it under that version again
yields nothing.
"""

from __future__ import annotations

from datetime import datetime

from genledger.core import pricing
from genledger.core.generation import Generation
from genledger.core.prices import PriceVersion
from genledger.core.records import record
from genledger.core.usage import Usage

MAX_REASON = 500


@record
class Adjustment:
    """``amount_pico`` added to ``generation_id``'s cost when re-rated from ``from_version``
    to ``to_version`` (None: the generation recorded no version), with why and when."""

    generation_id: str
    key_id: str
    model: str
    generation_created_at: datetime
    amount_pico: int
    from_version: int | None
    to_version: int
    reason: str
    created_at: datetime

    @property
    def id(self) -> str:
        """One adjustment per generation and target version: re-applying cannot add a second."""
        return f"{self.generation_id}@v{self.to_version}"


def recorded_usage(generation: Generation) -> Usage | None:
    """The usage a generation was rated on, from its token counts (None: none was reported)."""
    if generation.tokens_prompt is None and generation.tokens_completion is None:
        return None
    return Usage(
        prompt_tokens=generation.tokens_prompt or 0,
        completion_tokens=generation.tokens_completion or 0,
        cached_tokens=generation.native_tokens_cached or 0,
        cache_write_tokens=generation.native_tokens_cache_write or 0,
        reasoning_tokens=generation.native_tokens_reasoning or 0,
        completion_image_tokens=generation.native_tokens_completion_images or 0,
    )


def rerate(
    generation: Generation,
    prior: tuple[Adjustment, ...],
    version: PriceVersion,
    *,
    reason: str,
    now: datetime,
) -> Adjustment | None:
    """The adjustment that brings ``generation`` (with its ``prior`` adjustments) to its cost
    under ``version``; None when it costs that already or has no usage to rate."""
    usage = recorded_usage(generation)
    if usage is None or any(a.to_version == version.version for a in prior):
        return None
    # At the price of what served it: a fallback endpoint may charge otherwise than the model.
    target = pricing.cost(usage, version.price_for(generation.provider_name)).total
    current = generation.charge_pico + sum(a.amount_pico for a in prior)
    if target == current:
        return None
    latest = max(prior, key=lambda a: a.created_at) if prior else None
    return Adjustment(
        generation_id=generation.id,
        key_id=generation.key_id,
        model=generation.model,
        generation_created_at=generation.created_at,
        amount_pico=target - current,
        from_version=latest.to_version if latest is not None else generation.price_version,
        to_version=version.version,
        reason=reason,
        created_at=now,
    )
