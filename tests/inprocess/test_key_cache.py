"""The key cache: requests that miss it together share one lookup, a caller that leaves does
not fail the others', an error is not cached, and a key forgotten during a lookup is looked up
again (what was in flight may predate the change)."""

from __future__ import annotations

import asyncio

import pytest

from genledger.core.ids import hash_key
from genledger.core.keys import KeyRecord
from genledger.errors import Unauthorized
from genledger.gateway.auth import Authenticator
from tests.inprocess.stores import MemoryKeyStore


class SlowKeyStore(MemoryKeyStore):
    """Counts lookups; each reads the key, then waits for ``gate`` (set: answer at once) before
    answering what it read, as a read that began before a change; ``failing``: raise."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing = False

    async def find_by_hash(self, key_hash: str) -> KeyRecord | None:
        self.lookups += 1
        found = await super().find_by_hash(key_hash)
        await self.gate.wait()
        if self.failing:
            raise ConnectionError("the database went away")
        return found


async def _waiting(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_lookup():
    keys = SlowKeyStore()
    key, secret = await keys.create("busy")
    auth = Authenticator(keys, ttl=60)
    keys.gate.clear()
    callers = [asyncio.create_task(auth.authenticate(f"Bearer {secret}")) for _ in range(32)]
    await _waiting(5)
    assert keys.lookups == 1
    keys.gate.set()
    found = await asyncio.gather(*callers)
    assert {k.id for k in found} == {key.id}
    assert keys.lookups == 1
    await auth.authenticate(f"Bearer {secret}")  # cached now
    assert keys.lookups == 1


async def test_an_unknown_key_is_one_lookup_for_all_and_each_gets_401():
    keys = SlowKeyStore()
    auth = Authenticator(keys, ttl=60)
    keys.gate.clear()
    callers = [asyncio.create_task(auth.authenticate("Bearer sk-gl-v1-nobody")) for _ in range(5)]
    await _waiting(5)
    keys.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, Unauthorized) and r.message == "User not found." for r in results)
    assert keys.lookups == 1


async def test_a_caller_that_leaves_does_not_cancel_the_lookup_of_the_others():
    keys = SlowKeyStore()
    key, secret = await keys.create("busy")
    auth = Authenticator(keys, ttl=60)
    keys.gate.clear()
    leaving = asyncio.create_task(auth.authenticate(f"Bearer {secret}"))
    staying = asyncio.create_task(auth.authenticate(f"Bearer {secret}"))
    await _waiting(5)
    leaving.cancel()
    await _waiting(5)
    keys.gate.set()
    assert (await staying).id == key.id
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert keys.lookups == 1


async def test_a_failed_lookup_fails_its_waiters_and_is_not_cached():
    keys = SlowKeyStore()
    key, secret = await keys.create("busy")
    auth = Authenticator(keys, ttl=60)
    keys.gate.clear()
    keys.failing = True
    callers = [asyncio.create_task(auth.authenticate(f"Bearer {secret}")) for _ in range(3)]
    await _waiting(5)
    keys.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert keys.lookups == 1
    keys.failing = False
    assert (await auth.authenticate(f"Bearer {secret}")).id == key.id
    assert keys.lookups == 2


async def test_a_key_forgotten_during_its_lookup_is_looked_up_again():
    keys = SlowKeyStore()
    key, secret = await keys.create("busy")
    auth = Authenticator(keys, ttl=60)
    keys.gate.clear()
    before = asyncio.create_task(auth.authenticate(f"Bearer {secret}"))
    await _waiting(5)
    await keys.set_disabled("busy")
    auth.forget(hash_key(secret))
    keys.gate.set()
    assert (await before).id == key.id  # it read the key before the change
    with pytest.raises(Unauthorized, match="disabled"):
        await auth.authenticate(f"Bearer {secret}")
    assert keys.lookups == 2


async def test_an_expired_entry_is_looked_up_again():
    keys = SlowKeyStore()
    _, secret = await keys.create("busy")
    auth = Authenticator(keys, ttl=0.05)
    await auth.authenticate(f"Bearer {secret}")
    await auth.authenticate(f"Bearer {secret}")
    assert keys.lookups == 1
    await asyncio.sleep(0.1)
    await asyncio.gather(*(auth.authenticate(f"Bearer {secret}") for _ in range(8)))
    assert keys.lookups == 2
