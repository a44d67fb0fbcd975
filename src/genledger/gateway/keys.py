"""Key management as a use case: the management check, the key's usage, and the changes.

Routes only map paths onto these methods; the command line uses the stores directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from genledger.core.keys import KeyExists, KeyRecord
from genledger.core.records import record
from genledger.core.stores import GenerationStore, KeyStore, PeriodStarts, PeriodUsage
from genledger.errors import BadRequest, Forbidden, NotFound
from genledger.gateway.admission import Admission
from genledger.gateway.auth import Authenticator
from genledger.limits import RateLimits

Records = list[KeyRecord]  # named here: inside KeyManager, ``list`` is the method
Days = list[tuple[str, int, int]]


def period_starts(now: datetime) -> PeriodStarts:
    """Where the UTC day, week (from Monday) and month containing ``now`` began."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return PeriodStarts(day=day, week=day - timedelta(days=day.weekday()), month=day.replace(day=1))


@record
class KeyView:
    """A key as the API shows it: the record, its usage by period, its effective rate limits."""

    key: KeyRecord
    usage: PeriodUsage
    limits: RateLimits
    last_used_at: datetime | None = None  # the key's latest generation, from the ledger


class KeyManager:
    """What a caller may see and change of keys: its own, or (a management key) all of them."""

    def __init__(
        self, keys: KeyStore, generations: GenerationStore, auth: Authenticator, admission: Admission
    ) -> None:
        self._keys = keys
        self._generations = generations
        self._auth = auth
        self._admission = admission

    async def _views(self, keys: list[KeyRecord]) -> list[KeyView]:
        ids = [key.id for key in keys]
        usage = await self._generations.usage_in_periods(ids, period_starts(datetime.now(UTC)))
        last_used = await self._generations.last_used(ids)
        return [
            KeyView(
                key, usage.get(key.id, PeriodUsage()), self._admission.limits_for(key), last_used.get(key.id)
            )
            for key in keys
        ]

    async def _view(self, key: KeyRecord) -> KeyView:
        return (await self._views([key]))[0]

    async def current(self, caller: KeyRecord) -> KeyView:
        """The caller's own key, read afresh (the authenticator's copy may be seconds old)."""
        fresh = await self._keys.find_by_id(caller.id)
        if fresh is None:
            raise NotFound("This key no longer exists")
        return await self._view(fresh)

    @staticmethod
    def require_management(caller: KeyRecord, may: str = "manage keys") -> None:
        """403 unless ``caller`` is a management key, saying what only one ``may`` do."""
        if not caller.is_management:
            raise Forbidden(f"Only management keys may {may} (genledger keys create --management)")

    async def _target(self, key_hash: str) -> KeyRecord:
        key = await self._keys.find_by_hash(key_hash)
        if key is None:
            raise NotFound(f"No key with hash {key_hash}")
        return key

    async def list(self, caller: KeyRecord) -> list[KeyView]:
        self.require_management(caller)
        return await self._views(await self._keys.list())

    async def records(self, caller: KeyRecord) -> Records:
        """Every key, without its usage (names for a page of generations)."""
        self.require_management(caller)
        return await self._keys.list()

    async def get(self, caller: KeyRecord, key_hash: str) -> KeyView:
        self.require_management(caller)
        return await self._view(await self._target(key_hash))

    async def usage_by_day(self, caller: KeyRecord, key_hash: str, days: int) -> Days:
        """(UTC day, generations, picodollars) of the key's last ``days`` days with usage."""
        self.require_management(caller)
        key = await self._target(key_hash)
        since = period_starts(datetime.now(UTC)).day - timedelta(days=days - 1)
        return await self._generations.usage_by_day(key.id, since)

    async def create(self, caller: KeyRecord, arguments: dict[str, Any]) -> tuple[KeyView, str]:
        """A new key and its secret (shown this once). ``arguments`` as ``KeyStore.create`` takes."""
        self.require_management(caller)
        arguments = dict(arguments)
        name = arguments.pop("name", None)
        if name is None:
            raise BadRequest("'name' is required", metadata={"param": "name"})
        try:
            key, secret = await self._keys.create(name, **arguments)
        except KeyExists as exc:
            raise BadRequest(str(exc), metadata={"param": "name"}) from None
        return KeyView(key, PeriodUsage(), self._admission.limits_for(key)), secret

    async def update(self, caller: KeyRecord, key_hash: str, changes: dict[str, Any]) -> KeyView:
        self.require_management(caller)
        target = await self._target(key_hash)
        try:
            key = await self._keys.update(target.hash, **changes)
        except KeyExists as exc:
            raise BadRequest(str(exc), metadata={"param": "name"}) from None
        if key is None:
            raise NotFound(f"No key with hash {target.hash}")
        self._auth.forget(key.hash)
        return await self._view(key)

    async def delete(self, caller: KeyRecord, key_hash: str) -> None:
        self.require_management(caller)
        target = await self._target(key_hash)
        await self._keys.delete(target.hash)
        self._auth.forget(target.hash)
