"""`keep_alive` tells JetStream a message is in progress only when its ack timer needs it."""

from __future__ import annotations

import time

from dexec.bus.worker import Delivery


class CountingMsg:
    def __init__(self) -> None:
        self.in_progress_calls = 0

    async def in_progress(self) -> None:
        self.in_progress_calls += 1


async def test_fast_work_sends_nothing_and_slow_work_resets_the_timer() -> None:
    msg = CountingMsg()
    delivery = Delivery(msg, attempt=1, ack_wait=30.0)  # type: ignore[arg-type]

    await delivery.keep_alive()
    assert msg.in_progress_calls == 0  # just delivered: the timer has 30 s to go

    delivery.timer_started = time.monotonic() - 11  # over a third of the ack wait has gone
    await delivery.keep_alive()
    assert msg.in_progress_calls == 1
    await delivery.keep_alive()
    assert msg.in_progress_calls == 1  # the timer was reset by the first one
