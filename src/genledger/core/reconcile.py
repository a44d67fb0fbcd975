"""Reconciliation with a provider: our record of a generation against the provider's own.

A difference is one field where they disagree: tokens exactly, cost beyond a tolerance. The
cost compared is what the provider said the call cost when it answered (our
``upstream_cost_pico``), or what we charged when it said nothing, against the provider's
ledger's ``total_cost``.
"""

from __future__ import annotations

from genledger.core.generation import Generation
from genledger.core.records import record


@record
class ProviderRecord:
    """What the provider's ``/generation`` says of a generation (money in picodollars)."""

    tokens_prompt: int | None
    tokens_completion: int | None
    total_cost_pico: int


@record
class Difference:
    """One disagreement. ``theirs`` is None when the provider has no record at all."""

    generation_id: str
    upstream_id: str | None
    field: str
    ours: int | None
    theirs: int | None


def differences(ours: Generation, theirs: ProviderRecord | None, *, tolerance_pico: int) -> list[Difference]:
    """Every field where our record and the provider's disagree (a cost within
    ``tolerance_pico`` agrees)."""
    if theirs is None:
        return [Difference(ours.id, ours.upstream_id, "record", 1, None)]
    found = []
    for field in ("tokens_prompt", "tokens_completion"):
        mine, their = getattr(ours, field), getattr(theirs, field)
        if mine != their:
            found.append(Difference(ours.id, ours.upstream_id, field, mine, their))
    cost = ours.upstream_cost_pico if ours.upstream_cost_pico is not None else ours.total_cost_pico
    if abs(cost - theirs.total_cost_pico) > tolerance_pico:
        found.append(Difference(ours.id, ours.upstream_id, "cost", cost, theirs.total_cost_pico))
    return found


def drifted(generation: Generation, tolerance_pico: int) -> bool:
    """Whether the upstream said the call cost other than we charged, beyond ``tolerance_pico``."""
    upstream = generation.upstream_cost_pico
    return upstream is not None and abs(upstream - generation.total_cost_pico) > tolerance_pico
