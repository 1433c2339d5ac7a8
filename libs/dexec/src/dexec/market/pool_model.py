"""A pool as the market file defines it, and its state when the market is at a given price.

The simulation keeps no trade history: a pool's state is a pure function of the price path at
a slot, as if arbitrageurs had just brought it to its price. A constant-product pool slides
along its curve `x·y = k` (its invariant is fixed by the file's liquidity at the reference
prices). A DLMM pool keeps its liquidity, in the file's shape, around the bin that holds the
price; how far the price sits inside that bin sets the active bin's mix of X and Y, so quotes
change smoothly with the price instead of jumping a whole bin at a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum
from fractions import Fraction
from math import floor, isqrt

from dexec.market.constant_product import constant_product_swap
from dexec.market.dlmm import BASIS_POINT_MAX, ONE_Q64, Bin, DlmmBook, DlmmFees, bin_price_q64
from dexec.market.pools import SwapResult
from dexec.market.tokens import Token
from dexec.market.venues import PoolKind

PPM = 1_000_000


class LiquidityShape(StrEnum):
    """Meteora's liquidity strategies: flat, peaked at the price, or thickest at the edges."""

    SPOT = "spot"
    CURVE = "curve"
    BID_ASK = "bid-ask"

    def weights(self, bins_each_side: int) -> list[int]:
        span = range(-bins_each_side, bins_each_side + 1)
        if self is LiquidityShape.CURVE:
            return [bins_each_side + 1 - abs(k) for k in span]
        if self is LiquidityShape.BID_ASK:
            return [1 + abs(k) for k in span]
        return [1 for _ in span]


@dataclass(frozen=True)
class ConstantProductCurve:
    fee_numerator: int
    fee_denominator: int
    # k = x·y in base units.
    invariant: int


@dataclass(frozen=True)
class DlmmCurve:
    fees: DlmmFees
    bins_each_side: int
    shape: LiquidityShape


@dataclass(frozen=True)
class Pool:
    address: str
    kind: PoolKind
    # DLMM's X and Y; prices are in quote base units per base base unit.
    base: Token
    quote: Token
    liquidity_usd: Decimal
    curve: ConstantProductCurve | DlmmCurve

    @property
    def venue(self) -> str:
        return self.kind.venue

    @property
    def pair(self) -> str:
        return f"{self.base.symbol}/{self.quote.symbol}"

    @property
    def detail(self) -> str:
        curve = self.curve
        if isinstance(curve, DlmmCurve):
            return f"DLMM bin step {curve.fees.bin_step}"
        if self.kind is PoolKind.RAYDIUM_AMM_V4:
            return "AMM v4"
        rate = Decimal(curve.fee_numerator * 100) / curve.fee_denominator
        return f"CPMM {rate.normalize():f}%"

    @property
    def name(self) -> str:
        """Human-readable and unique enough to tell pools of one pair apart."""
        return f"{self.venue} {self.pair} {self.detail}"

    def trades(self, a: Token, b: Token) -> bool:
        return {a, b} == {self.base, self.quote}

    def other(self, token: Token) -> Token:
        return self.quote if token == self.base else self.base


@dataclass(frozen=True)
class ConstantProductState:
    pool: Pool
    reserve_base: int
    reserve_quote: int

    def swap(self, token_in: Token, amount_in: int) -> SwapResult:
        curve = self.pool.curve
        assert isinstance(curve, ConstantProductCurve)
        reserves = (self.reserve_base, self.reserve_quote)
        if token_in != self.pool.base:
            reserves = (self.reserve_quote, self.reserve_base)
        return constant_product_swap(
            *reserves, amount_in, curve.fee_numerator, curve.fee_denominator
        )

    def holdings(self) -> tuple[int, int]:
        return self.reserve_base, self.reserve_quote


@dataclass(frozen=True)
class DlmmState:
    pool: Pool
    book: DlmmBook

    def swap(self, token_in: Token, amount_in: int) -> SwapResult:
        return self.book.swap(amount_in, swap_for_y=token_in == self.pool.base)

    def holdings(self) -> tuple[int, int]:
        return self.book.total_x, self.book.total_y


PoolState = ConstantProductState | DlmmState


def constant_product_state(pool: Pool, price: Fraction) -> ConstantProductState:
    """The point of `x·y = k` where `y/x = price`."""
    curve = pool.curve
    assert isinstance(curve, ConstantProductCurve)
    k = curve.invariant
    reserve_base = isqrt(k * price.denominator // price.numerator)
    reserve_quote = isqrt(k * price.numerator // price.denominator)
    return ConstantProductState(pool, max(reserve_base, 1), max(reserve_quote, 1))


def locate_bin(bin_step: int, price: Fraction) -> tuple[int, int]:
    """The bin whose price range holds `price`, and where in that range it is (ppm).

    `ln(price)/ln(1 + binStep/1e4)` in 50-digit decimal arithmetic: deterministic on every
    machine, and it only chooses the active bin, never an amount.
    """
    with localcontext(prec=50):
        ln_price = Decimal(price.numerator).ln() - Decimal(price.denominator).ln()
        position = ln_price / (Decimal(BASIS_POINT_MAX + bin_step) / BASIS_POINT_MAX).ln()
        active_id = floor(position)
        return active_id, int((position - active_id) * PPM)


def dlmm_state(pool: Pool, price: Fraction, value_in_quote: int) -> DlmmState:
    """The pool's bins around `price`, holding `value_in_quote` (quote base units) in total.

    Bins below the active one hold only Y (quote), bins above only X (base). The active bin
    holds both: the further the price has climbed inside it, the more of its X has been
    bought out for Y.
    """
    curve = pool.curve
    assert isinstance(curve, DlmmCurve)
    step = curve.fees.bin_step
    active_id, position_ppm = locate_bin(step, price)
    weights = curve.shape.weights(curve.bins_each_side)
    total_weight = sum(weights)
    bins = []
    for offset, weight in enumerate(weights, start=-curve.bins_each_side):
        bin_id = active_id + offset
        value = value_in_quote * weight // total_weight
        if offset < 0:
            amount_y = value
        elif offset == 0:
            amount_y = value * position_ppm // PPM
        else:
            amount_y = 0
        # X is worth its price in Y: value / price, rounded down (the pool never over-holds).
        amount_x = (value - amount_y) * ONE_Q64 // bin_price_q64(step, bin_id)[1]
        bins.append(Bin(bin_id, amount_x, amount_y))
    return DlmmState(pool, DlmmBook(curve.fees, active_id, bins))
