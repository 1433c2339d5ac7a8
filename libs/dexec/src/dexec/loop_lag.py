"""Event-loop lag: how late the loop runs a timer, the symptom of a loop with too much to do.

Every service does all of its work on one asyncio loop, so a handler that holds the loop (a
large batch, a full garbage collection) or a CPU the process cannot get delays every order in
it, and shows first as timers running late. The probe is a plain timer callback (no task): it
costs one call per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from prometheus_client import Histogram

from dexec.metrics import EVENT_LOOP_LAG

INTERVAL_SECONDS = 0.25


class LoopLagProbe:
    def __init__(
        self, histogram: Histogram = EVENT_LOOP_LAG, interval: float = INTERVAL_SECONDS
    ) -> None:
        self._histogram = histogram
        self._interval = interval
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start on the running loop."""
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self._interval
        self._timer = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._histogram.observe(max(0.0, loop.time() - self._due))
        self._schedule(loop)


@contextlib.contextmanager
def probing_loop_lag() -> Iterator[LoopLagProbe]:
    """A probe on the running loop for the duration of the block."""
    probe = LoopLagProbe()
    probe.start()
    try:
        yield probe
    finally:
        probe.stop()
