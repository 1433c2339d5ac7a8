"""A timer loop stops even when the work it runs swallows cancellation (as nats-py can)."""

from __future__ import annotations

import asyncio
import contextlib

from dexec.periodic import Periodic


async def test_stop_ends_a_loop_whose_tick_swallows_cancellation() -> None:
    ticking = asyncio.Event()
    ticks = 0

    async def stubborn_tick() -> None:
        nonlocal ticks
        ticks += 1
        ticking.set()
        with contextlib.suppress(asyncio.CancelledError):  # as nats-py's flush does
            await asyncio.sleep(0.05)  # the tick's work, interrupted by stop

    timer = Periodic(stubborn_tick, interval=0.001, what="test")
    timer.start()
    await asyncio.wait_for(ticking.wait(), 5)
    await asyncio.wait_for(timer.stop(), 5)
    # The loop has ended: nothing ticks after stop returned.
    assert timer._task is not None and timer._task.done()
    assert ticks == 1


async def test_a_failing_tick_does_not_end_the_loop() -> None:
    calls = 0
    again = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("NATS restarting")
        again.set()

    timer = Periodic(flaky, interval=0.001, what="test")
    timer.start()
    await asyncio.wait_for(again.wait(), 5)
    await timer.stop()
    assert calls >= 2
