"""Messages between the API and the router's request/reply subjects (quotes, the catalogue)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field

from dexec.orders.events import BaseUnits, CamelModel, Route


class QuoteRequest(CamelModel):
    input_mint: str
    output_mint: str
    amount: BaseUnits = Field(gt=0)
    slippage_bps: int = Field(ge=0, le=10_000)


class QuoteError(CamelModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    retryable: bool = False


class QuoteReply(CamelModel):
    """Exactly one of `quote` and `error`."""

    quote: Route | None = None
    error: QuoteError | None = None


class TokenInfo(CamelModel):
    symbol: str
    mint: str
    decimals: int
    name: str
    # The market's reference price at `MarketInfo.context_slot` (pools drift around it).
    price_usd: Decimal
    venues: list[str]


class PoolInfo(CamelModel):
    address: str
    kind: str
    label: str
    pair: str
    base_mint: str
    quote_mint: str
    # The pool fee on the input; for DLMM the base fee (a variable fee adds to it).
    fee_bps: Decimal
    bin_step: int | None = None
    liquidity_usd: Decimal


class VenueInfo(CamelModel):
    name: str
    label: str
    pools: list[PoolInfo]


class MarketInfo(CamelModel):
    market: str
    context_slot: int
    tokens: list[TokenInfo]
    venues: list[VenueInfo]
