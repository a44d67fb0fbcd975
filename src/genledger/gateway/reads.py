"""Reading the ledger: who may see which generations.

An ordinary key sees its own generations; a management key sees every key's, or one key's
when it names its hash. The rule lives here once, for the list, the export and activity.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

from genledger.core.activity import ActivityRows, By, Grouping
from genledger.core.generation import Generation
from genledger.core.keys import KeyRecord
from genledger.core.notes import Notes
from genledger.core.stores import (
    Cursor,
    FeedbackStore,
    GenerationFilter,
    GenerationStore,
    KeyStore,
    Page,
    walk,
)
from genledger.errors import Forbidden, NotFound

Batch = list[Generation]  # named here: inside LedgerReader, ``list`` is the method


async def notes_of(generations: GenerationStore, feedback: FeedbackStore, ids: Sequence[str]) -> Notes:
    """What the ledger keeps beside the generations ``ids``: two reads, on two connections at
    once (a page or an export batch waits for one round trip, not two)."""
    adjustments, given = await asyncio.gather(generations.adjustments_of(ids), feedback.for_generations(ids))
    return Notes(adjustments, given)


class LedgerReader:
    def __init__(
        self,
        keys: KeyStore,
        generations: GenerationStore,
        feedback: FeedbackStore,
        *,
        drift_tolerance_pico: int = 0,
    ) -> None:
        self._keys = keys
        self._generations = generations
        self._feedback = feedback
        self._drift_tolerance_pico = drift_tolerance_pico

    async def notes(self, ids: Sequence[str]) -> Notes:
        """The adjustments and feedback of the generations ``ids`` (read after their scope was)."""
        return await notes_of(self._generations, self._feedback, ids)

    async def scope(
        self, caller: KeyRecord, where: GenerationFilter, api_key_hash: str | None
    ) -> GenerationFilter:
        """``where`` narrowed to what ``caller`` may read (and drift measured against the
        configured tolerance)."""
        where = dataclasses.replace(where, drift_tolerance_pico=self._drift_tolerance_pico)
        if not caller.is_management:
            if api_key_hash is not None and api_key_hash != caller.hash:
                raise Forbidden("Only management keys may read other keys' generations")
            return dataclasses.replace(where, key_id=caller.id)
        if api_key_hash is None:
            return dataclasses.replace(where, key_id=None)
        key = await self._keys.find_by_hash(api_key_hash)
        if key is None:
            raise NotFound(f"No key with hash {api_key_hash}", metadata={"param": "api_key_hash"})
        return dataclasses.replace(where, key_id=key.id)

    async def get(self, caller: KeyRecord, generation_id: str) -> Generation:
        """One generation: the caller's own, or any (a management key). Another key's is
        answered exactly like a missing one."""
        if caller.is_management:
            found = await self._generations.lookup(generation_id)
        else:
            found = await self._generations.get(generation_id, caller.id)
        if found is None:
            raise NotFound(f"Generation {generation_id} not found", metadata={"id": generation_id})
        return found

    async def list(
        self,
        caller: KeyRecord,
        where: GenerationFilter,
        *,
        limit: int,
        after: Cursor | None = None,
        api_key_hash: str | None = None,
    ) -> Page:
        scoped = await self.scope(caller, where, api_key_hash)
        return await self._generations.list(scoped, limit=limit, after=after)

    async def export(
        self, caller: KeyRecord, where: GenerationFilter, *, batch: int, api_key_hash: str | None = None
    ) -> AsyncIterator[Batch]:
        """Every generation of ``where`` that ``caller`` may read, newest first, ``batch`` at a time.

        The scope is checked and the first batch read before this returns, so a refusal or a
        failing store is raised here, before a response has begun.
        """
        scoped = await self.scope(caller, where, api_key_hash)
        first = await self._generations.list(scoped, limit=batch)
        return walk(self._generations, scoped, batch=batch, first=first)

    async def activity(
        self,
        caller: KeyRecord,
        where: GenerationFilter,
        group_by: Sequence[Grouping],
        *,
        api_key_hash: str | None = None,
        latency: bool = False,
    ) -> ActivityRows:
        """Activity is the account's, as on OpenRouter: management keys only. A row grouped by
        key names it by its hash (None for a key deleted since)."""
        if not caller.is_management:
            raise Forbidden("Only management keys may read activity")
        scoped = await self.scope(caller, where, api_key_hash)
        rows = await self._generations.activity(scoped, group_by, latency=latency)
        at = [i for i, grouping in enumerate(group_by) if grouping.by is By.KEY]
        if not at:
            return rows
        hashes = {key.id: key.hash for key in await self._keys.list()}
        return [
            dataclasses.replace(
                row,
                group=tuple(hashes.get(v or "") if i in at else v for i, v in enumerate(row.group)),
            )
            for row in rows
        ]
