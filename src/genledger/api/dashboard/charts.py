"""What the pages draw: chart data as JSON for ``dashboard.js``, and a generation's cost in parts."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from genledger.core.generation import Generation
from genledger.core.money import to_usd
from genledger.core.pricing import CostParts, Price, cost_parts
from genledger.core.reconcile import drifted
from genledger.core.records import record
from genledger.core.usage import Usage
from genledger.gateway.overview import Overview


def _epoch(label: str) -> int:
    """A bucket label (``2026-11-27`` or ``2026-11-27T13:00:00Z``) as Unix seconds, for uPlot."""
    moment = datetime.fromisoformat(label.replace("Z", "+00:00"))
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp())


def overview_chart(overview: Overview) -> str:
    """The series as uPlot's columns: times, USD, requests, errors (an HTML attribute's text)."""
    series = overview.series
    return orjson.dumps(
        {
            "x": [_epoch(point.bucket) for point in series],
            "usd": [to_usd(point.usage_pico) for point in series],
            "requests": [point.requests for point in series],
            "errors": [point.errors for point in series],
        }
    ).decode()


def usage_chart(days: list[tuple[str, int, int]]) -> str:
    return orjson.dumps(
        {
            "x": [_epoch(day) for day, _, _ in days],
            "usd": [to_usd(usage) for _, _, usage in days],
            "requests": [count for _, count, _ in days],
        }
    ).decode()


@record
class CostBreakdown:
    """A generation's cost in parts at the catalog's price for its model today; ``matches``
    says whether they add up to what was charged (prices may have changed since)."""

    parts: CostParts
    matches: bool


def cost_breakdown(generation: Generation, price: Price | None) -> CostBreakdown | None:
    if price is None:
        return None
    usage = Usage(
        prompt_tokens=generation.tokens_prompt or 0,
        completion_tokens=generation.tokens_completion or 0,
        cached_tokens=generation.native_tokens_cached or 0,
        cache_write_tokens=generation.native_tokens_cache_write or 0,
        reasoning_tokens=generation.native_tokens_reasoning or 0,
    )
    parts = cost_parts(usage, price)
    return CostBreakdown(parts, parts.total == generation.total_cost_pico)


@record
class Drift:
    """The upstream's own cost of a generation against ours (``upstream_inference_cost``)."""

    upstream_pico: int
    difference_pico: int  # upstream minus ours
    tolerance_pico: int
    drifted: bool


def drift_of(generation: Generation, tolerance_pico: int) -> Drift | None:
    """None when the upstream reported no cost of its own."""
    upstream = generation.upstream_cost_pico
    if upstream is None:
        return None
    return Drift(
        upstream,
        upstream - generation.total_cost_pico,
        tolerance_pico,
        drifted(generation, tolerance_pico),
    )
