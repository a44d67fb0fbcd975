"""The key cache: requests that miss it together share one lookup, a caller that leaves does
not fail the others', an error is not cached, and a key forgotten during a lookup is looked up
again (what was in flight may predate the change)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

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


@dataclass
class Gated:
    """A key ``busy`` in a :class:`SlowKeyStore` whose gate is shut, behind an authenticator."""

    keys: SlowKeyStore
    key: KeyRecord
    auth: Authenticator
    bearer: str

    def callers(self, count: int, bearer: str | None = None) -> list[asyncio.Task[KeyRecord]]:
        return [asyncio.create_task(self.auth.authenticate(bearer or self.bearer)) for _ in range(count)]


@pytest.fixture
async def gated() -> Gated:
    keys = SlowKeyStore()
    key, secret = await keys.create("busy")
    keys.gate.clear()
    return Gated(keys, key, Authenticator(keys, ttl=60), f"Bearer {secret}")


async def test_concurrent_misses_share_one_lookup(gated: Gated):
    callers = gated.callers(32)
    await _waiting(5)
    assert gated.keys.lookups == 1
    gated.keys.gate.set()
    found = await asyncio.gather(*callers)
    assert {k.id for k in found} == {gated.key.id}
    assert gated.keys.lookups == 1
    await gated.auth.authenticate(gated.bearer)  # cached now
    assert gated.keys.lookups == 1


async def test_an_unknown_key_is_one_lookup_for_all_and_each_gets_401(gated: Gated):
    callers = gated.callers(5, "Bearer sk-gl-v1-nobody")
    await _waiting(5)
    gated.keys.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, Unauthorized) and r.message == "User not found." for r in results)
    assert gated.keys.lookups == 1


async def test_a_caller_that_leaves_does_not_cancel_the_lookup_of_the_others(gated: Gated):
    leaving, staying = gated.callers(2)
    await _waiting(5)
    leaving.cancel()
    await _waiting(5)
    gated.keys.gate.set()
    assert (await staying).id == gated.key.id
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert gated.keys.lookups == 1


async def test_a_failed_lookup_fails_its_waiters_and_is_not_cached(gated: Gated):
    gated.keys.failing = True
    callers = gated.callers(3)
    await _waiting(5)
    gated.keys.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert gated.keys.lookups == 1
    gated.keys.failing = False
    assert (await gated.auth.authenticate(gated.bearer)).id == gated.key.id
    assert gated.keys.lookups == 2


async def test_a_key_forgotten_during_its_lookup_is_looked_up_again(gated: Gated):
    (before,) = gated.callers(1)
    await _waiting(5)
    await gated.keys.set_disabled("busy")
    gated.auth.forget(gated.key.hash)
    gated.keys.gate.set()
    assert (await before).id == gated.key.id  # it read the key before the change
    with pytest.raises(Unauthorized, match="disabled"):
        await gated.auth.authenticate(gated.bearer)
    assert gated.keys.lookups == 2


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
