"""What the ledger keeps beside some generations' records: their adjustments and feedback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field

from genledger.core.adjustments import Adjustment
from genledger.core.content import Feedback
from genledger.core.records import record


@record
class Notes:
    """By generation id; a generation absent from one has none of it."""

    adjustments: Mapping[str, Sequence[Adjustment]] = field(default_factory=dict)
    feedback: Mapping[str, Feedback] = field(default_factory=dict)

    def of(self, generation_id: str) -> tuple[Sequence[Adjustment], Feedback | None]:
        """The generation's adjustments and its feedback (None: none given)."""
        return self.adjustments.get(generation_id, ()), self.feedback.get(generation_id)
