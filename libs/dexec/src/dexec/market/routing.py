"""Route choice: quote every venue, keep the one that leaves the trader the most output."""

from __future__ import annotations

from dexec.market.market import Market
from dexec.market.pools import BPS
from dexec.market.tokens import Token, from_base_units
from dexec.orders.events import Route, RouteLeg, VenueQuote

SIGNATURE_FEE_LAMPORTS = 5_000


class NoRoute(LookupError):
    pass


def network_fee_lamports(priority_fee_lamports: int, signatures: int = 1) -> int:
    return SIGNATURE_FEE_LAMPORTS * signatures + priority_fee_lamports


def quote_venue(
    market: Market, venue: str, token_in: Token, token_out: Token, amount_in: int, slot: int
) -> VenueQuote:
    pool, result = market.swap(venue, token_in, token_out, amount_in, slot)
    return VenueQuote(
        venue=venue,
        pool=pool.address,
        in_amount=amount_in,
        out_amount=result.amount_out,
        fee_amount=result.fee,
        price_impact_pct=result.price_impact_pct,
        context_slot=slot,
    )


def min_out(out_amount: int, slippage_bps: int) -> int:
    """The least output the trader accepts, rounded down (Jupiter's otherAmountThreshold)."""
    return out_amount * (BPS - slippage_bps) // BPS


def choose_route(
    token_in: Token,
    token_out: Token,
    amount_in: int,
    slippage_bps: int,
    quotes: list[VenueQuote],
    failed_venues: dict[str, str],
    network_fee: int,
) -> Route:
    """The single-venue route with the largest output.

    Every single-venue route costs the same network fee (one signature), so the largest pool
    output is also the largest output after fees.
    """
    usable = [q for q in quotes if q.out_amount > 0]
    if not usable:
        raise NoRoute("no venue can fill this order", failed_venues)
    ranked = sorted(usable, key=lambda q: q.out_amount, reverse=True)
    best = ranked[0]
    reason = f"{best.venue} gives {from_base_units(token_out, best.out_amount)} {token_out.symbol}"
    if len(ranked) > 1:
        runner_up = ranked[1]
        gain = (best.out_amount - runner_up.out_amount) * BPS // max(runner_up.out_amount, 1)
        reason += f", {gain} bps more than {runner_up.venue}"
    for venue, error in failed_venues.items():
        reason += f"; {venue} unavailable ({error})"
    return Route(
        input_mint=token_in.mint,
        output_mint=token_out.mint,
        in_amount=amount_in,
        out_amount=best.out_amount,
        other_amount_threshold=min_out(best.out_amount, slippage_bps),
        price_impact_pct=best.price_impact_pct,
        route_plan=[
            RouteLeg(
                venue=best.venue,
                pool=best.pool,
                in_amount=best.in_amount,
                out_amount=best.out_amount,
                fee_amount=best.fee_amount,
                percent=100,
            )
        ],
        context_slot=best.context_slot,
        network_fee_lamports=network_fee,
        quotes=quotes,
        failed_venues=failed_venues,
        reason=reason,
    )
