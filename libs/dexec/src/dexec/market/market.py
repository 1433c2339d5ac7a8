"""The simulated market: pools on each venue, and a seeded price path over slots.

This is the first, simple model: every pool is constant product (Raydium AMM v4 at 25 bps,
Meteora at its own fee), and each pool's price drifts by a seeded, piecewise-constant offset
that changes every epoch of slots, so venues differ a little and a quote at routing time can
differ from the price at execution time. The same seed gives the same market.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from dexec.market.pools import BPS, SwapResult, constant_product_swap
from dexec.market.tokens import Token, resolve_token

RAYDIUM = "raydium"
METEORA = "meteora"
VENUES: tuple[str, ...] = (RAYDIUM, METEORA)
VENUE_FEE_BPS = {RAYDIUM: 25, METEORA: 20}

# (base, quote, price of one base in quote, depth in quote units on Raydium, on Meteora)
_PAIRS: tuple[tuple[str, str, str, int, int], ...] = (
    ("SOL", "USDC", "150", 8_000_000, 5_000_000),
    ("SOL", "USDT", "150.1", 3_000_000, 2_000_000),
    ("USDC", "USDT", "1.0002", 10_000_000, 6_000_000),
    ("BONK", "SOL", "0.00000015", 40_000, 25_000),
    ("JUP", "USDC", "0.8", 2_000_000, 1_500_000),
    ("RAY", "SOL", "0.0133", 60_000, 30_000),
)

DRIFT_EPOCH_SLOTS = 25  # ~10 s at 400 ms slots
MAX_DRIFT_BPS = 20


class NoPool(LookupError):
    pass


@dataclass(frozen=True)
class Pool:
    venue: str
    address: str
    base: Token
    quote: Token
    reserve_base: int
    reserve_quote: int
    fee_bps: int


def _seeded_int(seed: int, *parts: object, modulo: int) -> int:
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % modulo


def _pool_address(venue: str, base: str, quote: str) -> str:
    return hashlib.sha256(f"{venue}:{base}/{quote}".encode()).hexdigest()[:32]


class Market:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._pools: dict[tuple[str, str, str], Pool] = {}
        for base_sym, quote_sym, price, *depths in _PAIRS:
            base, quote = resolve_token(base_sym), resolve_token(quote_sym)
            for venue, depth in zip(VENUES, depths, strict=True):
                # Each venue starts a few basis points off the reference price.
                skew_bps = _seeded_int(seed, venue, base_sym, quote_sym, modulo=41) - 20
                reserve_quote = depth * 10**quote.decimals
                venue_price = Decimal(price) * (BPS + skew_bps) / BPS
                reserve_base = int(Decimal(depth) / venue_price * 10**base.decimals)
                pool = Pool(
                    venue,
                    _pool_address(venue, base_sym, quote_sym),
                    base,
                    quote,
                    reserve_base,
                    reserve_quote,
                    VENUE_FEE_BPS[venue],
                )
                self._pools[(venue, base.symbol, quote.symbol)] = pool

    def pools(self) -> list[Pool]:
        return list(self._pools.values())

    def pool(self, venue: str, token_in: Token, token_out: Token) -> Pool:
        pool = self._pools.get((venue, token_in.symbol, token_out.symbol)) or self._pools.get(
            (venue, token_out.symbol, token_in.symbol)
        )
        if pool is None:
            raise NoPool(f"{venue} has no {token_in.symbol}/{token_out.symbol} pool")
        return pool

    def drift_bps(self, pool: Pool, slot: int) -> int:
        epoch = slot // DRIFT_EPOCH_SLOTS
        span = 2 * MAX_DRIFT_BPS + 1
        return _seeded_int(self.seed, pool.address, epoch, modulo=span) - MAX_DRIFT_BPS

    def swap(
        self, venue: str, token_in: Token, token_out: Token, amount_in: int, slot: int
    ) -> tuple[Pool, SwapResult]:
        pool = self.pool(venue, token_in, token_out)
        # Drift moves the base price: more quote per base when positive.
        drift = self.drift_bps(pool, slot)
        reserve_quote = pool.reserve_quote * (BPS + drift) // BPS
        if token_in == pool.base:
            reserves = (pool.reserve_base, reserve_quote)
        else:
            reserves = (reserve_quote, pool.reserve_base)
        return pool, constant_product_swap(*reserves, amount_in, pool.fee_bps)
