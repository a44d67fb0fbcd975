"""Who is calling: bearer keys, looked up by hash with a short-lived cache."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from genledger.core.ids import hash_key
from genledger.core.keys import KeyRecord
from genledger.core.stores import KeyStore
from genledger.errors import Unauthorized

KEY_CACHE_TTL_S = 2.0
_MAX_KEY_LENGTH = 256


class Authenticator:
    """Turns an ``Authorization`` header into the calling key, or raises 401.

    Lookups are cached for ``ttl`` seconds, so a key disabled elsewhere (another gateway
    instance, the CLI) stops working within that time; :meth:`forget` drops it at once.
    Requests that miss the cache together share one lookup: when a busy key's entry expires,
    its concurrent requests would otherwise each query the store (and open connections
    beyond the pool's, only to close them again).
    """

    def __init__(self, keys: KeyStore, ttl: float = KEY_CACHE_TTL_S) -> None:
        self._keys = keys
        self._ttl = ttl
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._lookups: dict[str, asyncio.Task[KeyRecord | None]] = {}

    async def authenticate(self, authorization: str | None) -> KeyRecord:
        if not authorization:
            raise Unauthorized("No auth credentials found")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > _MAX_KEY_LENGTH:
            raise Unauthorized("Malformed Authorization header: expected 'Bearer <key>'")
        return await self.by_hash(hash_key(secret))

    async def by_hash(self, key_hash: str) -> KeyRecord:
        """The enabled key of hash ``key_hash`` (a dashboard session's), or 401."""
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            key = cached[1]
        else:
            lookup = self._lookups.get(key_hash)
            if lookup is None:
                lookup = asyncio.create_task(self._keys.find_by_hash(key_hash))
                self._lookups[key_hash] = lookup
                lookup.add_done_callback(lambda done: self._looked_up(key_hash, now, done))
            # Shielded: a caller that goes away must not cancel the others' lookup.
            key = await asyncio.shield(lookup)
        if key is None:
            raise Unauthorized("User not found.")
        if key.disabled:
            raise Unauthorized("This API key is disabled.")
        if key.expired(datetime.now(UTC)):
            assert key.expires_at is not None
            raise Unauthorized(
                f"This API key expired at {key.expires_at.isoformat()}.",
                metadata={"expires_at": key.expires_at.isoformat()},
            )
        return key

    def _looked_up(self, key_hash: str, started: float, lookup: asyncio.Task[KeyRecord | None]) -> None:
        if self._lookups.get(key_hash) is not lookup:
            return  # forgotten meanwhile: what it found may predate the change
        del self._lookups[key_hash]
        if lookup.cancelled() or lookup.exception() is not None:
            return  # nothing to cache; the waiters got the error
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_hash] = (started + self._ttl, lookup.result())

    def forget(self, key_hash: str) -> None:
        self._cache.pop(key_hash, None)
        self._lookups.pop(key_hash, None)
