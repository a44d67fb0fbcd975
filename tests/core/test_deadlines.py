"""Total deadlines on one shared timer: they strike as asyncio.timeout's do, a tick late at most."""

from __future__ import annotations

import asyncio
import time

import pytest

from genledger.core.deadlines import Deadlines

TICK = 0.02


async def test_a_body_past_its_deadline_ends_with_timeout_error_within_a_tick():
    deadlines = Deadlines(TICK)
    started = time.monotonic()
    with pytest.raises(TimeoutError), deadlines.within(0.05):
        await asyncio.sleep(10)
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 0.05 + 2 * TICK + 0.2  # (the last term: a busy test machine)


async def test_a_deadline_may_end_in_the_callers_own_error():
    class Late(Exception):
        pass

    deadlines = Deadlines(TICK)
    with pytest.raises(Late) as caught, deadlines.within(0.02, Late):
        await asyncio.sleep(10)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_a_deadline_given_its_task_strikes_it_without_asking_for_it(monkeypatch):
    task = asyncio.current_task()
    deadlines = Deadlines(TICK)

    def asked() -> None:
        raise AssertionError("asyncio.current_task() was called")

    monkeypatch.setattr(asyncio, "current_task", asked)
    with pytest.raises(TimeoutError), deadlines.within(0.02, task=task):
        await asyncio.sleep(10)


async def test_a_body_in_time_ends_normally_and_the_timer_stops_when_none_is_left():
    deadlines = Deadlines(TICK)
    with deadlines.within(5) as deadline:
        await asyncio.sleep(0)
    assert not deadline.expired
    await asyncio.sleep(3 * TICK)
    assert deadlines._timer is None  # nothing to watch: no timer left on the loop


async def test_many_deadlines_share_one_timer_and_each_strikes_its_own_task():
    deadlines = Deadlines(TICK)
    timers = set()

    async def one(seconds: float) -> str:
        try:
            with deadlines.within(seconds):
                timers.add(deadlines._timer)
                await asyncio.sleep(seconds + 0.3 if seconds < 1 else 0.01)
        except TimeoutError:
            return "timed out"
        return "done"

    outcomes = await asyncio.gather(*(one(0.04 if i % 2 else 5) for i in range(50)))
    assert outcomes == ["done" if i % 2 == 0 else "timed out" for i in range(50)]
    assert len(timers) == 1


async def test_a_cancellation_from_elsewhere_is_not_taken_for_the_deadline():
    deadlines = Deadlines(TICK)
    entered = asyncio.Event()

    async def body() -> None:
        with deadlines.within(5):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_while_the_deadline_strikes_stays_a_cancellation():
    deadlines = Deadlines(TICK)
    struck = asyncio.Event()

    async def body() -> None:
        with deadlines.within(0.01) as deadline:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                assert deadline.expired
                struck.set()
                await asyncio.sleep(10)  # cancelled again, from outside, while still inside

    task = asyncio.create_task(body())
    await struck.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_deadlines_outlives_its_event_loop():
    deadlines = Deadlines(TICK)

    async def stalled() -> None:
        with deadlines.within(0.03):
            await asyncio.sleep(10)

    async def left_behind() -> None:
        # A deadline still running when its loop ends: its timer dies with the loop.
        task = asyncio.create_task(stalled())
        await asyncio.sleep(0)
        task.cancel()

    asyncio.run(left_behind())
    with pytest.raises(TimeoutError):
        asyncio.run(stalled())  # a new loop: a new timer, not the dead one
