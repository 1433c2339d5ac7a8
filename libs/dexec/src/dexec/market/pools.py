"""Pool math in exact integers, rounded against the trader as the venues' programs do."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BPS = 10_000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class SwapResult:
    amount_in: int
    amount_out: int
    fee: int
    # Output at the pool's spot price with no fee and no impact, as an exact ratio.
    spot_out: Decimal

    @property
    def price_impact_pct(self) -> Decimal:
        after_fee = self.spot_out * (self.amount_in - self.fee) / self.amount_in
        if after_fee == 0:
            return Decimal(0)  # the fee took the whole input: nothing to move the price
        return ((after_fee - self.amount_out) / after_fee * 100).quantize(Decimal("0.0001"))


def constant_product_swap(
    reserve_in: int, reserve_out: int, amount_in: int, fee_bps: int
) -> SwapResult:
    """x·y=k, fee from the input: fee = ceil(in·fee/1e4), out = floor(y·in'/(x+in'))."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    fee = ceil_div(amount_in * fee_bps, BPS)
    net_in = amount_in - fee
    amount_out = reserve_out * net_in // (reserve_in + net_in)
    spot_out = Decimal(reserve_out) * amount_in / Decimal(reserve_in)
    return SwapResult(amount_in, amount_out, fee, spot_out)
