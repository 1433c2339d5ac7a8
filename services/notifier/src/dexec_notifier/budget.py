"""A client's budget of subscriptions, so one client cannot keep the notifier (and NATS) busy.

Each order id subscribed costs a backfill: events parsed from the live cache, or a read from
the stream for an order not cached (or not existing). A client sending 1,000-id subscribe
commands in a loop took seconds of CPU. A token bucket: a client may subscribe `rate` ids a
second on average, and up to `burst` at once, on its sockets together.

A client is its tenant when API keys are on, so opening more sockets buys no more budget (a
single-order socket spends one id); an anonymous client has nothing to be told apart by, and
each of its sockets has a budget of its own (the address would lump together everyone behind
one proxy or NAT).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable


class SubscribeBudget:
    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst  # a new socket may subscribe a full burst at once
        self._at = clock()

    def take(self, wanted: int) -> int:
        """How many of `wanted` ids may be subscribed now (all, some or none); spends them."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def seconds_until(self, wanted: int) -> int:
        """Whole seconds (at least 1) until `wanted` ids may be subscribed."""
        missing = min(wanted, self._burst) - self._tokens
        return max(1, math.ceil(missing / self.rate))


class ClientBudgets:
    """The budgets of one notifier replica's clients: one per tenant, shared by its sockets
    (tenants are the configured API keys' names, so the map stays small), and a fresh one for
    each anonymous socket."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._new = functools.partial(SubscribeBudget, rate, burst, clock)
        self._by_tenant: dict[str, SubscribeBudget] = {}

    def of(self, tenant: str | None) -> SubscribeBudget:
        if tenant is None:
            return self._new()
        budget = self._by_tenant.get(tenant)
        if budget is None:
            budget = self._by_tenant[tenant] = self._new()
        return budget
