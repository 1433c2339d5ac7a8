"""Per-client token buckets: `rate` requests a second, bursts of up to `burst`.

Orders and quotes draw on one bucket per client: both cost the router work. A client is its
tenant when API keys are on, else its address, which is the `X-Forwarded-For` client only when
the request came through a proxy listed in `DEXEC_FORWARDED_ALLOW_IPS` (uvicorn's
proxy-headers middleware): behind an ingress that is not listed, every client would share the
ingress's bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from dexec_api.errors import ApiError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._max_clients = max_clients
        self._clock = clock
        # Least recently seen first, so the table stays bounded however many clients come.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float | None:
        """Spend one token: None if allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self._burst), now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[client] = bucket
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate


def retry_after_header(seconds: float) -> dict[str, str]:
    """Retry-After takes whole seconds; round up so a client that obeys it succeeds."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class ClientLimit:
    """The API's rate limit: `admit` raises 429 RATE_LIMITED for a client over its rate."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._buckets = TokenBuckets(rate, burst) if rate > 0 else None

    def admit(self, request: Request, tenant: str | None) -> None:
        if self._buckets is None:
            return
        client = f"tenant:{tenant}" if tenant else (request.client.host if request.client else "")
        wait = self._buckets.take(client)
        if wait is not None:
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"over {self._rate:g} requests a second",
                headers=retry_after_header(wait),
            )
