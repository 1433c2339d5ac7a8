"""What every pool's math shares: integer rounding helpers, the swap result, and its errors.

Amounts are integers in base units. Each venue's program rounds against the trader (fees up,
outputs down), and so does every function here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

BPS = 10_000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class InsufficientLiquidity(ValueError):
    """The pool cannot fill the whole input (a DLMM pool ran out of bins)."""


# Fixed-point scale for price impact: far finer than the 4 decimals it is reported with.
_IMPACT_SCALE = 10**18


def percent(ratio: Fraction) -> Decimal:
    """A ratio as a percentage with 4 decimals (`0.0123` → `1.2300`), computed exactly."""
    return Decimal(round(ratio * 1_000_000)).scaleb(-4)


def price_impact_pct(hops: Iterable[tuple[int, Iterable[SwapResult]]]) -> Decimal:
    """How much less than the spot prices (after pool fees) a route gives, in percent.

    Each hop is its total output and the swaps that made it; over several hops the shares
    kept multiply. Integer fixed point rather than Fractions: the router reports an impact for
    every candidate and pool quote, and the metric needs 4 decimals, not exactness.
    """
    kept_num = kept_den = 1
    for out, results in hops:
        ideal = sum(
            r.spot_num * (r.amount_in - r.fee) * _IMPACT_SCALE // (r.spot_den * r.amount_in)
            for r in results
        )
        if ideal == 0:
            continue  # the fees took the whole input: nothing moved the price
        kept_num *= out * _IMPACT_SCALE
        kept_den *= ideal
    # Round half up to millionths of the whole (4 decimals of a percent).
    millionths = (2 * (kept_den - kept_num) * 1_000_000 + kept_den) // (2 * kept_den)
    return Decimal(millionths).scaleb(-4)


@dataclass(frozen=True)
class SwapResult:
    amount_in: int
    amount_out: int
    # Taken from the input, in input base units.
    fee: int
    # What the whole input would buy at the pool's spot price, before fee and impact, as
    # spot_num / spot_den: two integers, because a Fraction costs a gcd on every quote and
    # the router quotes far more swaps than it reports.
    spot_num: int
    spot_den: int

    @property
    def spot_out(self) -> Fraction:
        return Fraction(self.spot_num, self.spot_den)

    @property
    def ideal_out(self) -> Fraction:
        """The output at the spot price after the pool fee: the baseline for price impact."""
        return Fraction(self.spot_num * (self.amount_in - self.fee), self.spot_den * self.amount_in)

    @property
    def price_impact_pct(self) -> Decimal:
        return price_impact_pct([(self.amount_out, [self])])
