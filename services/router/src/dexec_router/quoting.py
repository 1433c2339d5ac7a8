"""Asking the venues for their pools' state at once, with simulated latency and failures.

Like an aggregator, the router reads each venue's pool accounts (one RPC round trip per venue,
concurrently) and quotes every route itself with the pools' math. A venue that fails or does
not answer within the timeout is left out; the route is chosen among the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from decimal import Decimal

from dexec.market.market import Market, MarketView
from dexec.market.pool_model import Pool
from dexec.settings import LatencyMode, MarketSettings
from dexec_router.metrics import QuoteOutcome, observe_quote

NO_POOL = "no pool for this pair"
TIMEOUT = "timeout"


class VenueUnavailable(Exception):
    pass


def _roll(*parts: object) -> Decimal:
    """A seeded draw in [0, 1), exact, from the parts."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return Decimal(int.from_bytes(digest, "big")) / Decimal(2**64)


def venue_latency_seconds(settings: MarketSettings, venue: str, key: str) -> float:
    if settings.latency_mode == LatencyMode.ZERO:
        return 0.0
    low, high = settings.quote_latency_ms_min, settings.quote_latency_ms_max
    roll = int.from_bytes(hashlib.blake2b(f"{venue}:{key}".encode(), digest_size=4).digest())
    return (low + roll % (high - low + 1)) / 1000


async def _ask_venue(settings: MarketSettings, venue: str, key: str) -> None:
    """One venue's round trip: returns when it answered, raises or hangs when it does not."""
    if venue in settings.down_venues:
        raise VenueUnavailable("503 Service Unavailable (venue down)")
    seed = settings.market_seed
    timeout_rate, failure_rate = settings.quote_timeout_rate, settings.quote_failure_rate
    if timeout_rate and _roll(seed, "quote-timeout", venue, key) < timeout_rate:
        await asyncio.Event().wait()  # never answers; the caller's timeout ends it
    delay = venue_latency_seconds(settings, venue, key)
    if delay:
        await asyncio.sleep(delay)
    if failure_rate and _roll(seed, "quote-failure", venue, key) < failure_rate:
        raise VenueUnavailable("503 Service Unavailable")


async def _why_not(settings: MarketSettings, venue: str, key: str, timeout: float) -> str | None:
    """None when the venue answered in time, else why it did not."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await _ask_venue(settings, venue, key)
    except TimeoutError:
        observe_quote(venue, QuoteOutcome.TIMEOUT, time.perf_counter() - started)
        return TIMEOUT
    except VenueUnavailable as exc:
        observe_quote(venue, QuoteOutcome.ERROR, time.perf_counter() - started)
        return f"error: {exc}"
    observe_quote(venue, QuoteOutcome.OK, time.perf_counter() - started)
    return None


async def fetch_view(
    market: Market,
    settings: MarketSettings,
    pools: list[Pool],
    timeout: float,
    key: str,
    slot_now: Callable[[], int],
) -> tuple[MarketView, dict[str, str]]:
    """The market as the venues that answered show it, and why each other venue did not.

    The view is at the slot when the last answer came (`slot_now()` after the round trips).
    """
    asked = [v for v in market.venues if any(p.venue == v for p in pools)]
    failed = {v: NO_POOL for v in market.venues if v not in asked}
    reasons = await asyncio.gather(*(_why_not(settings, v, key, timeout) for v in asked))
    for venue, reason in zip(asked, reasons, strict=True):
        if reason is not None:
            failed[venue] = reason
    answered = frozenset(v for v in asked if v not in failed)
    return market.view(slot_now(), answered), failed
