"""The loop-lag probe measures how late its timer runs, on a real event loop."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram

from dexec.loop_lag import LoopLagProbe
from tests.support.waiting import eventually

INTERVAL_SECONDS = 0.02
BLOCK_SECONDS = 0.3


async def test_a_loop_held_by_a_handler_shows_as_a_late_timer() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("lag_seconds", "test", buckets=(0.01, 0.1, 1.0), registry=registry)

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    async def ticks_past(count: float) -> bool:
        return sample("lag_seconds_count") > count

    probe = LoopLagProbe(histogram, interval=INTERVAL_SECONDS)
    probe.start()
    try:
        await eventually(lambda: ticks_past(2), timeout=5, what="the first ticks")
        before = sample("lag_seconds_count")
        time.sleep(BLOCK_SECONDS)  # noqa: ASYNC251 - a handler holding the loop is the case
        await eventually(lambda: ticks_past(before), timeout=5, what="a tick after the block")
    finally:
        probe.stop()

    late = sample("lag_seconds_count") - sample("lag_seconds_bucket", le="0.1")
    assert late >= 1
    # The tick due during the block ran when it ended: at least the block less one interval late.
    assert sample("lag_seconds_sum") >= BLOCK_SECONDS - INTERVAL_SECONDS
