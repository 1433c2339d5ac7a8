"""The simulated market: the market file's pools, priced along the seeded price path.

`Market(seed)` is a pure function of the seed and the market file: the router (quotes) and the
executor (re-pricing at execution) build their own and agree on every pool's state at every
slot without talking. A token's USD price at a slot is its reference price moved by its path
(plus the path of the token it tracks); a pool's price is the ratio of its tokens' prices moved
by the pool's own drift, so venues drift apart and come back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from dexec.market.base58 import derived_address
from dexec.market.constant_product import (
    AMM_V4_FEE_DENOMINATOR,
    AMM_V4_FEE_NUMERATOR,
    CPMM_FEE_DENOMINATOR,
)
from dexec.market.dlmm import DlmmFees
from dexec.market.execution import Fill, execute_route
from dexec.market.fees import token_units_per_lamport
from dexec.market.market_file import (
    AmmV4PoolSpec,
    CpmmPoolSpec,
    MarketSpec,
    PathSpec,
    PoolSpec,
    load_market_file,
)
from dexec.market.pool_model import (
    ConstantProductCurve,
    DlmmCurve,
    Pool,
    PoolState,
    constant_product_state,
    dlmm_state,
)
from dexec.market.pools import SwapResult
from dexec.market.price_path import PPM, Octave, noise_ppm, scaled
from dexec.market.tokens import Token, resolve_token
from dexec.market.venues import METEORA, RAYDIUM, VENUES, PoolKind

if TYPE_CHECKING:
    from dexec.orders.events import SwapPlan
    from dexec.settings import MarketSettings

__all__ = ["METEORA", "RAYDIUM", "VENUES", "Market", "MarketView", "Pool", "PoolState"]

_T = TypeVar("_T")
_SOL = resolve_token("SOL")


class _SlotCache(Generic[_T]):
    """Values per (key, slot), oldest evicted first: lookups cluster on the latest slots."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, _T] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], _T]) -> _T:
        value = self._items.get(key)
        if value is None:
            value = self._items[key] = make()
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def _octaves(path: PathSpec) -> tuple[Octave, ...]:
    return tuple(Octave(o.period_slots, int(o.amplitude_bps * 100)) for o in path.octaves)


def _ratio(value: Decimal) -> tuple[int, int]:
    fraction = Fraction(value)
    return fraction.numerator, fraction.denominator


class Market:
    def __init__(self, seed: int, spec: MarketSpec | None = None) -> None:
        self.seed = seed
        self.spec = spec or load_market_file()
        self.tokens: tuple[Token, ...] = tuple(resolve_token(key) for key in self.spec.tokens)
        self.hubs: tuple[Token, ...] = tuple(resolve_token(key) for key in self.spec.hubs)
        self._reference_usd = {
            token: Fraction(self.spec.token_spec(token.symbol).price_usd) for token in self.tokens
        }
        base_octaves = _octaves(self.spec.price_path)
        self._token_octaves = {
            token: scaled(base_octaves, *_ratio(self.spec.token_spec(token.symbol).volatility))
            for token in self.tokens
        }
        self._tracks = {
            token: resolve_token(tracked)
            for token in self.tokens
            if (tracked := self.spec.token_spec(token.symbol).tracks) is not None
        }
        drift_octaves = _octaves(self.spec.pool_drift)
        self._pools: dict[str, Pool] = {}
        self._drift_octaves: dict[str, tuple[Octave, ...]] = {}
        self._by_pair: dict[frozenset[Token], list[Pool]] = {}
        for index, pool_spec in enumerate(self.spec.pools):
            pool = self._build_pool(pool_spec, index)
            if pool.address in self._pools:
                raise ValueError(f"two pools have the address {pool.address}")
            self._pools[pool.address] = pool
            self._drift_octaves[pool.address] = scaled(drift_octaves, *_ratio(pool_spec.drift))
            self._by_pair.setdefault(frozenset((pool.base, pool.quote)), []).append(pool)
        self.venues: tuple[str, ...] = tuple(
            v for v in VENUES if any(p.venue == v for p in self._pools.values())
        )
        self._prices: _SlotCache[Fraction] = _SlotCache(1_024)
        self._rates: _SlotCache[Fraction] = _SlotCache(1_024)
        self._states: _SlotCache[PoolState] = _SlotCache(4_096)

    @classmethod
    def from_settings(cls, settings: MarketSettings) -> Market:
        path = Path(settings.market_file) if settings.market_file else None
        return cls(settings.market_seed, load_market_file(path))

    def _build_pool(self, spec: PoolSpec, index: int) -> Pool:
        base, quote = (resolve_token(s) for s in spec.symbols)
        kind = PoolKind(spec.kind)
        address = spec.address or derived_address(kind, base.symbol, quote.symbol, index)
        curve: ConstantProductCurve | DlmmCurve
        if isinstance(spec, AmmV4PoolSpec | CpmmPoolSpec):
            # Half the value on each side at the reference prices fixes k for good.
            half = Fraction(spec.liquidity_usd) / 2
            reserve_base = int(half / self._reference_usd[base] * 10**base.decimals)
            reserve_quote = int(half / self._reference_usd[quote] * 10**quote.decimals)
            fee = (
                (AMM_V4_FEE_NUMERATOR, AMM_V4_FEE_DENOMINATOR)
                if isinstance(spec, AmmV4PoolSpec)
                else (spec.trade_fee_rate, CPMM_FEE_DENOMINATOR)
            )
            curve = ConstantProductCurve(*fee, reserve_base * reserve_quote)
        else:
            fees = DlmmFees(
                spec.bin_step,
                spec.base_factor,
                spec.variable_fee_control,
                spec.max_volatility_accumulator,
            )
            curve = DlmmCurve(fees, spec.bins_each_side, spec.shape)
        return Pool(address, kind, base, quote, spec.liquidity_usd, curve)

    # --- the static market

    def pools(self) -> list[Pool]:
        return list(self._pools.values())

    def pool(self, address: str) -> Pool:
        try:
            return self._pools[address]
        except KeyError:
            raise LookupError(f"no pool {address}") from None

    def pools_between(self, a: Token, b: Token) -> list[Pool]:
        return list(self._by_pair.get(frozenset((a, b)), ()))

    def route_pools(self, token_in: Token, token_out: Token) -> list[Pool]:
        """Every pool a route from `token_in` to `token_out` may use.

        The pair's own pools when it has any; otherwise the pools of both legs through each
        hub that connects the two tokens.
        """
        direct = self.pools_between(token_in, token_out)
        if direct:
            return direct
        pools: list[Pool] = []
        for hub in self.hubs:
            if hub in (token_in, token_out):
                continue
            first, second = self.pools_between(token_in, hub), self.pools_between(hub, token_out)
            if first and second:
                pools += first + second
        return pools

    # --- the price path

    def _token_offset_ppm(self, token: Token, slot: int) -> int:
        offset = noise_ppm(self.seed, f"token:{token.symbol}", self._token_octaves[token], slot)
        tracked = self._tracks.get(token)
        if tracked is not None:
            offset += self._token_offset_ppm(tracked, slot)
        return offset

    def price_usd(self, token: Token, slot: int) -> Fraction:
        """The token's price in USD at `slot` (the reference every pool drifts around)."""

        def compute() -> Fraction:
            return self._reference_usd[token] * (PPM + self._token_offset_ppm(token, slot)) / PPM

        return self._prices.get((token, slot), compute)

    def units_per_lamport(self, token: Token, slot: int) -> Fraction:
        """What one lamport (SOL's base unit) is worth in `token` base units at `slot`."""

        def compute() -> Fraction:
            sol_usd, token_usd = self.price_usd(_SOL, slot), self.price_usd(token, slot)
            return token_units_per_lamport(token, sol_usd, token_usd)

        return self._rates.get((token, slot), compute)

    def drift_ppm(self, pool: Pool, slot: int) -> int:
        octaves = self._drift_octaves[pool.address]
        return noise_ppm(self.seed, f"pool:{pool.address}", octaves, slot)

    def pool_price(self, pool: Pool, slot: int) -> Fraction:
        """The pool's price at `slot`: quote base units per base base unit."""
        ratio = self.price_usd(pool.base, slot) / self.price_usd(pool.quote, slot)
        units = Fraction(10**pool.quote.decimals, 10**pool.base.decimals)
        return ratio * units * (PPM + self.drift_ppm(pool, slot)) / PPM

    # --- pools at a slot

    def state(self, pool: Pool, slot: int) -> PoolState:
        def compute() -> PoolState:
            price = self.pool_price(pool, slot)
            if isinstance(pool.curve, ConstantProductCurve):
                return constant_product_state(pool, price)
            value = Fraction(pool.liquidity_usd) / self.price_usd(pool.quote, slot)
            return dlmm_state(pool, price, int(value * 10**pool.quote.decimals))

        return self._states.get((pool.address, slot), compute)

    def swap(self, address: str, token_in: Token, amount_in: int, slot: int) -> SwapResult:
        """Swap in one pool as it is at `slot`."""
        return self.state(self.pool(address), slot).swap(token_in, amount_in)

    def view(self, slot: int, venues: frozenset[str] | None = None) -> MarketView:
        return MarketView(self, slot, frozenset(self.venues) if venues is None else venues)

    def execute(self, route: SwapPlan, slot: int) -> Fill:
        """Run a signed route's swaps on the market as it is at `slot` (the landing slot)."""
        return execute_route(self, route, slot)


@dataclass(frozen=True)
class MarketView:
    """The market as a router sees it at one slot: the pools of the venues that answered."""

    market: Market
    slot: int
    venues: frozenset[str]

    def pools_between(self, a: Token, b: Token) -> list[PoolState]:
        return [
            self.market.state(pool, self.slot)
            for pool in self.market.pools_between(a, b)
            if pool.venue in self.venues
        ]

    def price_usd(self, token: Token) -> Fraction:
        return self.market.price_usd(token, self.slot)

    def units_per_lamport(self, token: Token) -> Fraction:
        return self.market.units_per_lamport(token, self.slot)
