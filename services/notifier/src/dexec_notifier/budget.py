"""A socket's budget of subscriptions, so one client cannot keep the notifier (and NATS) busy.

Each order id subscribed costs a backfill: events parsed from the live cache, or a read from
the stream for an order not cached (or not existing). A client sending 1,000-id subscribe
commands in a loop took seconds of CPU. A token bucket: a socket may subscribe `rate` ids a
second on average, and up to `burst` at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class SubscribeBudget:
    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst  # a new socket may subscribe a full burst at once
        self._at = clock()

    def take(self, wanted: int) -> int:
        """How many of `wanted` ids may be subscribed now (all, some or none); spends them."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def seconds_until(self, wanted: int) -> int:
        """Whole seconds (at least 1) until `wanted` ids may be subscribed."""
        missing = min(wanted, self._burst) - self._tokens
        return max(1, math.ceil(missing / self._rate))
