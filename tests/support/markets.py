"""Small market files for tests that need a market other than the default one."""

from __future__ import annotations

from pathlib import Path

# Prices that never move (no price path, no drift), SOL at 150 USDC: add the pools.
STILL_SOL_USDC = """
name = "still SOL/USDC"
[price_path]
[pool_drift]
[tokens.SOL]
price_usd = 150
[tokens.USDC]
price_usd = 1
"""

# Only SOL/USDC trades: BONK → JUP has no pool, and no hub connects them.
SOL_USDC_ONLY = (
    STILL_SOL_USDC
    + """[[pools]]
kind = "raydium-amm-v4"
pair = "SOL/USDC"
liquidity_usd = 1_000_000
[[pools]]
kind = "meteora-dlmm"
pair = "SOL/USDC"
bin_step = 10
base_factor = 10000
bins_each_side = 10
liquidity_usd = 1_000_000
"""
)


def sol_usdc_only(folder: Path) -> Path:
    path = folder / "sol-usdc-only.toml"
    path.write_text(SOL_USDC_ONLY)
    return path
