"""Network fees of a swap transaction, and their value in the output token.

Solana charges 5,000 lamports per signature plus a priority fee: a price per compute unit
times the transaction's compute-unit limit. The builder sets that limit from the route, so a
route with more steps (split legs, a second hop, wrapping or unwrapping SOL) pays more. The
engine bids `priority_fee_lamports` per 200,000 compute units (Solana's default budget for
one instruction); a transaction that names no limit pays exactly that.

Compute units per step are typical mainnet figures, rounded; they only need to rank routes
the way the real costs would.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from dexec.market.pools import ceil_div
from dexec.market.tokens import WSOL_MINT, Token
from dexec.market.venues import PoolKind

SIGNATURE_FEE_LAMPORTS = 5_000
LAMPORTS_PER_SOL = 10**9
PRIORITY_FEE_REFERENCE_CU = 200_000
# Compute-budget instructions and the route program's own work.
TRANSACTION_BASE_CU = 20_000
SWAP_CU = {
    PoolKind.RAYDIUM_AMM_V4: 35_000,
    PoolKind.RAYDIUM_CPMM: 40_000,
    PoolKind.METEORA_DLMM: 65_000,
}
# SOL in: create a temporary wSOL account, fund it, sync_native, close it after the swap.
WRAP_SOL_CU = 30_000
# SOL out: create the wSOL account the output lands in, close it to receive the SOL.
UNWRAP_SOL_CU = 28_000


def compute_unit_limit(legs: Iterable[PoolKind], input_mint: str, output_mint: str) -> int:
    units = TRANSACTION_BASE_CU + sum(SWAP_CU[kind] for kind in legs)
    if input_mint == WSOL_MINT:
        units += WRAP_SOL_CU
    if output_mint == WSOL_MINT:
        units += UNWRAP_SOL_CU
    return units


def network_fee_lamports(
    priority_fee_lamports: int, signatures: int = 1, compute_units: int | None = None
) -> int:
    """Signature fees plus the priority fee for `compute_units` (the reference budget if None)."""
    priority = priority_fee_lamports
    if compute_units is not None:
        priority = ceil_div(priority_fee_lamports * compute_units, PRIORITY_FEE_REFERENCE_CU)
    return SIGNATURE_FEE_LAMPORTS * signatures + priority


def token_units_per_lamport(token: Token, sol_usd: Fraction, token_usd: Fraction) -> Fraction:
    """The exchange rate from lamports to `token` base units at these prices."""
    return sol_usd / token_usd * 10**token.decimals / LAMPORTS_PER_SOL


def lamports_in_token(lamports: int, rate: Fraction) -> int:
    """What `lamports` are worth in a token at `rate` (see above), rounded up.

    Rounded up so a route's fees are never understated when routes are compared.
    """
    return ceil_div(lamports * rate.numerator, rate.denominator)
