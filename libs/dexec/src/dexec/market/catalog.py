"""What a market trades and where: the answer behind `GET /api/tokens` and `GET /api/venues`."""

from __future__ import annotations

from decimal import Decimal

from dexec.market.dlmm import FEE_PRECISION
from dexec.market.market import Market
from dexec.market.pool_model import DlmmCurve, Pool
from dexec.market.pools import BPS
from dexec.market.quote_messages import MarketInfo, PoolInfo, TokenInfo, VenueInfo
from dexec.market.venues import VENUE_NAMES

PRICE_DECIMALS = Decimal("0.000000001")


def _fee_bps(pool: Pool) -> Decimal:
    curve = pool.curve
    if isinstance(curve, DlmmCurve):
        return Decimal(curve.fees.base_fee_rate * BPS) / FEE_PRECISION
    return Decimal(curve.fee_numerator * BPS) / curve.fee_denominator


def _pool_info(pool: Pool) -> PoolInfo:
    return PoolInfo(
        address=pool.address,
        kind=pool.kind,
        label=pool.kind.label,
        pair=pool.pair,
        base_mint=pool.base.mint,
        quote_mint=pool.quote.mint,
        fee_bps=_fee_bps(pool).normalize(),
        bin_step=pool.curve.fees.bin_step if isinstance(pool.curve, DlmmCurve) else None,
        liquidity_usd=pool.liquidity_usd,
    )


def describe(market: Market, slot: int) -> MarketInfo:
    pools = market.pools()
    tokens = []
    for token in market.tokens:
        price = market.price_usd(token, slot)
        venues = sorted({p.venue for p in pools if token in (p.base, p.quote)})
        tokens.append(
            TokenInfo(
                symbol=token.symbol,
                mint=token.mint,
                decimals=token.decimals,
                name=token.name,
                price_usd=(Decimal(price.numerator) / price.denominator).quantize(PRICE_DECIMALS),
                venues=venues,
            )
        )
    venues = [
        VenueInfo(
            name=venue,
            label=VENUE_NAMES[venue],
            pools=[_pool_info(p) for p in pools if p.venue == venue],
        )
        for venue in market.venues
    ]
    return MarketInfo(market=market.spec.name, context_slot=slot, tokens=tokens, venues=venues)
