"""Re-rating recorded generations under a model's current price version, as adjustment entries."""

from __future__ import annotations

from datetime import UTC, datetime

from genledger.core.adjustments import MAX_REASON, Adjustment, rerate
from genledger.core.prices import PriceVersion
from genledger.core.records import record
from genledger.core.stores import GenerationFilter, GenerationStore, walk

BATCH = 500


@record
class RepriceResult:
    """What a re-rating found (dry run) or wrote (applied): the version it rated under, how many
    generations it looked at, and the adjustments."""

    version: PriceVersion
    examined: int
    adjustments: list[Adjustment]

    @property
    def total_pico(self) -> int:
        return sum(a.amount_pico for a in self.adjustments)


async def reprice(
    generations: GenerationStore,
    version: PriceVersion,
    *,
    since: datetime,
    until: datetime | None,
    reason: str,
    apply: bool,
) -> RepriceResult:
    """Re-rate the model's generations created in ``[since, until)`` under ``version``.

    With ``apply`` the adjustments are written (each at most once: applying twice adds
    nothing); without, only computed. Nothing recorded is changed.
    """
    if not reason.strip() or len(reason) > MAX_REASON:
        raise ValueError(f"a reason of 1 to {MAX_REASON} characters is required")
    where = GenerationFilter(model=version.model, created_after=since, created_before=until)
    now = datetime.now(UTC)
    examined = 0
    found: list[Adjustment] = []
    async for batch in walk(generations, where, batch=BATCH):
        examined += len(batch)
        prior = await generations.adjustments_of([g.id for g in batch])
        due = [
            a
            for g in batch
            if (a := rerate(g, prior.get(g.id, ()), version, reason=reason, now=now)) is not None
        ]
        found += await generations.adjust(due) if apply else due
    return RepriceResult(version, examined, found)
