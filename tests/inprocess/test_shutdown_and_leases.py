"""The end of a graceful shutdown, and reservation leases, in process (memory stores, scripted providers)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from genledger.core.events import Failed, Settled, TextDelta
from genledger.core.usage import Usage
from genledger.errors import ServiceUnavailable
from genledger.gateway.leases import Leases
from genledger.gateway.stopping import Stopped, Stopping
from tests.inprocess.conftest import BuildGateway, context, request
from tests.inprocess.scripted import Script, answer
from tests.inprocess.stores import MemoryKeyStore

LIMIT = 10**12


async def test_a_stream_waiting_on_its_provider_at_the_deadline_ends_with_503_and_is_recorded_cancelled(
    build: BuildGateway,
):
    gw = await build()
    key = await gw.key(limit_pico=LIMIT)
    gate = asyncio.Event()
    steps = answer("one two three")
    gw.primary.then(Script(steps=[steps[0], steps[1], gate, *steps[2:]]))
    relay = await gw.service.stream(key, request(stream=True), context())
    events = relay.events
    assert isinstance(await anext(events), TextDelta)
    assert (await gw.fresh(key)).reserved_pico > 0
    rest = asyncio.create_task(_all(events))
    await waiting_on_the_provider(gw.service.stopping)
    assert gw.service.stopping.stop() == 1
    ended = await asyncio.wait_for(rest, 10)
    assert isinstance(ended[-2], Failed) and ended[-2].status == 503
    assert "shutting down" in ended[-2].message
    assert isinstance(ended[-1], Settled)
    record = gw.generations.generations[relay.head.generation_id]
    assert record.cancelled is True and record.streamed is True
    # Stopped before the provider told its usage: estimates, in the record and the usage chunk
    # alike ("hi" and its message's overhead at a quarter; "one" in one piece).
    assert (record.tokens_prompt, record.tokens_completion, record.native_tokens_completion) == (3, 1, None)
    assert record.finish_reason == "error"  # as the stream's last chunk told the caller
    assert record.native_finish_reason == "error"  # that chunk's native_finish_reason too
    assert ended[-1] == Settled(Usage(prompt_tokens=3, completion_tokens=1), record.charge_pico)
    assert record.charge_pico > 0
    state = await gw.fresh(key)
    assert (state.reserved_pico, state.usage_pico) == (0, record.charge_pico)
    assert gw.primary.closed_streams == 1
    assert await gw.keys.held() == ()


async def test_a_stream_stopped_while_its_chunk_is_written_ends_after_the_write(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=LIMIT)
    relay = await gw.service.stream(key, request(stream=True), context())
    events = relay.events
    assert isinstance(await anext(events), TextDelta)  # suspended at its yield: "writing"
    gw.service.stopping.stop()
    ended = await asyncio.wait_for(_all(events), 10)
    assert isinstance(ended[-2], Failed) and ended[-2].status == 503
    assert gw.generations.generations[relay.head.generation_id].cancelled is True
    assert (await gw.fresh(key)).reserved_pico == 0


async def test_a_request_waiting_for_its_answer_at_the_deadline_gets_503_and_its_credit_back(
    build: BuildGateway,
):
    gw = await build()
    key = await gw.key(limit_pico=LIMIT)
    gw.primary.then(Script(stall=asyncio.Event()))
    answering = asyncio.create_task(gw.service.complete(key, request(), context()))
    await waiting_on_the_provider(gw.service.stopping)
    assert (await gw.fresh(key)).reserved_pico > 0
    gw.service.stopping.stop()
    with pytest.raises(ServiceUnavailable) as caught:
        await asyncio.wait_for(answering, 10)
    assert caught.value.headers == {"Retry-After": "1"}
    assert (await gw.fresh(key)).reserved_pico == 0 and not gw.generations.generations
    # And any request that comes after the stop (a kept-alive connection) gets 503 too.
    gw.primary.then(Script())
    with pytest.raises(ServiceUnavailable):
        await gw.service.complete(key, request(), context())
    assert (await gw.fresh(key)).reserved_pico == 0


async def test_an_ordinary_cancellation_is_not_taken_for_a_stop():
    stopping = Stopping()
    started = asyncio.Event()

    async def wait() -> None:
        with stopping.watch() as watch:
            started.set()
            await watch.waiting(asyncio.Event().wait())

    task = asyncio.create_task(wait())
    await started.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopping.stop() == 0


async def test_a_watch_stopped_before_it_waits_closes_what_it_was_given():
    stopping = Stopping()
    stopping.stop()

    async def never() -> None:
        raise AssertionError("never awaited")

    with stopping.watch() as watch, pytest.raises(Stopped):
        await watch.waiting(never())  # closed, not left to warn


async def test_leases_are_renewed_while_alive_and_given_back_when_they_run_out(
    caplog: pytest.LogCaptureFixture,
):
    keys = MemoryKeyStore()
    key, _ = await keys.create("leased", limit_pico=1_000)
    dead = Leases(keys, lease=60, owner="dead")
    alive = Leases(keys, lease=60, owner="alive")
    assert await keys.reserve(key.id, 100, None, dead.hold("gen-dead")) is None
    assert await keys.reserve(key.id, 200, None, alive.hold("gen-alive")) is None
    # The dead instance's lease runs out (as if its last renewal was long ago); the live one renews.
    keys.reservations["gen-dead"].lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    keys.reservations["gen-alive"].lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with caplog.at_level(logging.WARNING, "genledger.leases"):
        assert await alive.tick() == 1
    assert "gave back 1 reservation" in caplog.text
    assert await keys.held() == (("gen-alive", "alive", 200),)
    assert keys.reservations["gen-alive"].lease_expires_at > datetime.now(UTC)
    assert (await keys.find_by_id(key.id)).reserved_pico == 200
    alive.start()
    alive.start()  # once
    await alive.stop()  # gives back what it still holds
    assert await keys.held() == () and (await keys.find_by_id(key.id)).reserved_pico == 0


async def test_a_failing_renewal_is_logged_and_retried(caplog: pytest.LogCaptureFixture):
    keys = MemoryKeyStore()
    calls = 0
    retried = asyncio.Event()

    async def broken(*args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls >= 2:
            retried.set()
        raise OSError("database away")

    keys.renew = broken  # type: ignore[method-assign]
    keys.reclaim = broken  # type: ignore[assignment,method-assign]
    leases = Leases(keys, lease=0.6, owner="flaky")
    with caplog.at_level(logging.WARNING, "genledger.leases"):
        leases.start()
        async with asyncio.timeout(10):
            await retried.wait()
        await leases.stop()
    assert "renewing reservation leases failed" in caplog.text
    assert "giving back this instance's reservations failed" in caplog.text


async def waiting_on_the_provider(stopping: Stopping) -> None:
    """Until a registered request is inside ``Watch.waiting`` (nothing announces it): a deadline."""
    async with asyncio.timeout(10):
        while not any(watch._task is not None for watch in stopping._watches):  # noqa: ASYNC110
            await asyncio.sleep(0)


async def _all(events) -> list:
    return [event async for event in events]
