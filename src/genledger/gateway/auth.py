"""Who is calling: bearer keys, looked up by hash with a short-lived cache."""

from __future__ import annotations

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
    """

    def __init__(self, keys: KeyStore, ttl: float = KEY_CACHE_TTL_S) -> None:
        self._keys = keys
        self._ttl = ttl
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

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
            key = await self._keys.find_by_hash(key_hash)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash] = (now + self._ttl, key)
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

    def forget(self, key_hash: str) -> None:
        self._cache.pop(key_hash, None)
