"""Reconciling a provider's generations: each of ours fetched from the provider and compared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from genledger.core.reconcile import Difference, ProviderRecord, differences
from genledger.core.records import record
from genledger.core.stores import GenerationFilter, GenerationStore, walk

BATCH = 200
Fetch = Callable[[str], Awaitable[ProviderRecord | None]]
"""The provider's record of an upstream generation id; None when it has none."""


@record
class Reconciliation:
    examined: int
    unidentified: int  # generations the provider gave no id for: nothing to look up
    differences: list[Difference]


async def reconcile(
    generations: GenerationStore,
    provider_name: str,
    fetch: Fetch,
    *,
    since: datetime,
    until: datetime | None,
    tolerance_pico: int,
) -> Reconciliation:
    """Compare every generation ``provider_name`` served in ``[since, until)`` with its record."""
    where = GenerationFilter(provider_name=provider_name, created_after=since, created_before=until)
    examined = unidentified = 0
    found: list[Difference] = []
    async for batch in walk(generations, where, batch=BATCH):
        for generation in batch:
            examined += 1
            if generation.upstream_id is None:
                unidentified += 1
                continue
            theirs = await fetch(generation.upstream_id)
            found += differences(generation, theirs, tolerance_pico=tolerance_pico)
    return Reconciliation(examined, unidentified, found)
