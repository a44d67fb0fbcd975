"""Stored content and feedback as use cases: what is kept, who may read it, and pruning.

The content itself never reaches a log line: only generation ids and sizes do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from genledger.core.content import ContentPolicy, Feedback, FeedbackCategory, GenerationContent
from genledger.core.keys import KeyRecord
from genledger.core.stores import ContentStore, FeedbackStore, GenerationStore
from genledger.errors import NotFound

log = logging.getLogger("genledger.content")

PRUNE_EVERY_S = 3600.0  # expired content is deleted at most this often per instance


class ContentService:
    def __init__(
        self,
        policy: ContentPolicy,
        content: ContentStore,
        feedback: FeedbackStore,
        generations: GenerationStore,
    ) -> None:
        self.policy = policy
        self._content = content
        self._feedback = feedback
        self._generations = generations
        self._next_prune = 0.0

    def wants(self, key: KeyRecord) -> bool:
        """Whether this key's generations have their content stored."""
        return self.policy.applies_to(key.store_content)

    async def record(self, content: GenerationContent) -> bool:
        """Store ``content`` if it fits the size bound; whether it was stored."""
        encoded = content.encoded()
        if not self.policy.fits(encoded):
            log.info(
                "content of generation %s not stored: %d bytes, over content_storage.max_bytes (%d)",
                content.generation_id,
                len(encoded),
                self.policy.max_bytes,
            )
            return False
        await self._content.put(content)
        await self._prune_when_due()
        return True

    async def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        pruned = await self._content.prune(self.policy.kept_since(datetime.now(UTC)))
        if pruned:
            log.info(
                "pruned the content of %d generations older than %d days", pruned, self.policy.retention_days
            )

    async def get(self, caller: KeyRecord, generation_id: str) -> GenerationContent:
        """The caller's own generation's content, or a 404 that says why there is none."""
        since = self.policy.kept_since(datetime.now(UTC))
        content = await self._content.get(generation_id, caller.id, since)
        if content is not None:
            return content
        metadata = {"id": generation_id}
        if not self.wants(caller):
            raise NotFound(
                f"No content for generation {generation_id}: content storage is off for this key "
                "(content_storage.enabled in the config, or the key's store_content)",
                metadata=metadata,
            )
        raise NotFound(
            f"No content for generation {generation_id}: not found, older than "
            f"{self.policy.retention_days} days, or larger than {self.policy.max_bytes} bytes",
            metadata=metadata,
        )

    async def submit_feedback(
        self, caller: KeyRecord, generation_id: str, category: FeedbackCategory, comment: str | None
    ) -> Feedback:
        if await self._generations.get(generation_id, caller.id) is None:
            # Another key's generation is answered exactly like a missing one.
            raise NotFound(f"Generation {generation_id} not found", metadata={"id": generation_id})
        feedback = Feedback(generation_id, caller.id, category, comment, datetime.now(UTC))
        await self._feedback.put(feedback)
        return feedback

    async def feedback_for(self, generation_ids: Sequence[str]) -> dict[str, Feedback]:
        return await self._feedback.for_generations(generation_ids)
