"""Asking every venue for a quote at once, with the simulated venue latency and a timeout."""

from __future__ import annotations

import asyncio
import hashlib

from dexec.market.market import VENUES, Market, NoPool
from dexec.market.routing import quote_venue
from dexec.market.tokens import Token
from dexec.orders.events import VenueQuote
from dexec.settings import LatencyMode, MarketSettings


def venue_latency_seconds(settings: MarketSettings, venue: str, key: str) -> float:
    if settings.latency_mode == LatencyMode.ZERO:
        return 0.0
    low, high = settings.quote_latency_ms_min, settings.quote_latency_ms_max
    roll = int.from_bytes(hashlib.blake2b(f"{venue}:{key}".encode(), digest_size=4).digest())
    return (low + roll % (high - low + 1)) / 1000


async def _quote_one(
    market: Market,
    settings: MarketSettings,
    venue: str,
    token_in: Token,
    token_out: Token,
    amount_in: int,
    slot: int,
    key: str,
) -> VenueQuote:
    delay = venue_latency_seconds(settings, venue, key)
    if delay:
        await asyncio.sleep(delay)
    return quote_venue(market, venue, token_in, token_out, amount_in, slot)


async def gather_quotes(
    market: Market,
    settings: MarketSettings,
    token_in: Token,
    token_out: Token,
    amount_in: int,
    slot: int,
    timeout: float,
    key: str,
) -> tuple[list[VenueQuote], dict[str, str]]:
    """Every venue's quote, and for each venue that gave none, why."""
    results = await asyncio.gather(
        *(
            asyncio.wait_for(
                _quote_one(market, settings, v, token_in, token_out, amount_in, slot, key), timeout
            )
            for v in VENUES
        ),
        return_exceptions=True,
    )
    quotes: list[VenueQuote] = []
    failed: dict[str, str] = {}
    for venue, result in zip(VENUES, results, strict=True):
        if isinstance(result, VenueQuote):
            quotes.append(result)
        elif isinstance(result, NoPool):
            failed[venue] = "no pool for this pair"
        elif isinstance(result, TimeoutError):
            failed[venue] = "timeout"
        else:
            failed[venue] = f"error: {result}"
    return quotes, failed
