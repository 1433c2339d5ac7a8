"""Raydium's constant-product pools: AMM v4 (25 bps) and CPMM (fee tiers), x·y = k.

Both take the fee from the input, rounded up, and round the output down, as the programs do:
`fee = ceil(in·rate)`, `in' = in - fee`, `out = floor(y·in' / (x + in'))`.
"""

from __future__ import annotations

from dexec.market.pools import BPS, SwapResult, ceil_div

# AMM v4: swap_fee_numerator / swap_fee_denominator.
AMM_V4_FEE_NUMERATOR = 25
AMM_V4_FEE_DENOMINATOR = BPS
# CPMM: trade_fee_rate over 1,000_000, one rate per AmmConfig (0.01%, 0.25%, 1%, 2%, 4%).
CPMM_FEE_DENOMINATOR = 1_000_000
CPMM_FEE_TIERS = frozenset({100, 2_500, 10_000, 20_000, 40_000})


def constant_product_swap(
    reserve_in: int,
    reserve_out: int,
    amount_in: int,
    fee_numerator: int,
    fee_denominator: int = BPS,
) -> SwapResult:
    """x·y=k with the fee taken from the input; `fee_numerator/fee_denominator` is the rate."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    fee = ceil_div(amount_in * fee_numerator, fee_denominator)
    net_in = amount_in - fee
    amount_out = reserve_out * net_in // (reserve_in + net_in)
    return SwapResult(amount_in, amount_out, fee, reserve_out * amount_in, reserve_in)
