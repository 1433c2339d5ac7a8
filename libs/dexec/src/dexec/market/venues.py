"""The venues and the kinds of pool each runs."""

from __future__ import annotations

from enum import StrEnum

RAYDIUM = "raydium"
METEORA = "meteora"
VENUES: tuple[str, ...] = (RAYDIUM, METEORA)
VENUE_NAMES = {RAYDIUM: "Raydium", METEORA: "Meteora"}


class PoolKind(StrEnum):
    RAYDIUM_AMM_V4 = "raydium-amm-v4"
    RAYDIUM_CPMM = "raydium-cpmm"
    METEORA_DLMM = "meteora-dlmm"

    @property
    def venue(self) -> str:
        return METEORA if self is PoolKind.METEORA_DLMM else RAYDIUM

    @property
    def label(self) -> str:
        """Jupiter's label for the AMM."""
        return _LABELS[self]


_LABELS = {
    PoolKind.RAYDIUM_AMM_V4: "Raydium",
    PoolKind.RAYDIUM_CPMM: "Raydium CP",
    PoolKind.METEORA_DLMM: "Meteora DLMM",
}
