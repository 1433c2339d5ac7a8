"""Running a signed route on the market as it is at the landing slot (the executor's side).

The route was quoted at an earlier slot; prices have moved since, so every leg is swapped again
on its pool as it is now. Like Jupiter's route program, a later hop does not reuse the quoted
amounts: it takes what the previous hop really produced and splits it across its legs in the
quoted proportions.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from dexec.market.pools import InsufficientLiquidity
from dexec.market.tokens import resolve_token
from dexec.orders.events import RouteLeg, SwapPlan

if TYPE_CHECKING:
    from dexec.market.market import Market


@dataclass(frozen=True)
class Fill:
    out_amount: int
    # The venue whose leg fell furthest below its quote: its program reports the shortfall.
    worst_venue: str
    # Why a leg produced nothing, if one did (a DLMM pool whose bins ran out).
    note: str | None = None


def hops(route: SwapPlan) -> list[list[RouteLeg]]:
    """The route's legs grouped by hop (consecutive legs with the same input mint)."""
    grouped: list[list[RouteLeg]] = []
    for leg in route.route_plan:
        mint = leg.input_mint or route.input_mint
        if grouped and (grouped[-1][0].input_mint or route.input_mint) == mint:
            grouped[-1].append(leg)
        else:
            grouped.append([leg])
    return grouped


def proportional_inputs(amount: int, legs: list[RouteLeg]) -> list[int]:
    """`amount` split like the legs' quoted inputs, rounded down, the rest to the largest leg."""
    quoted = sum(leg.in_amount for leg in legs)
    if quoted == amount:
        return [leg.in_amount for leg in legs]
    shares = [amount * leg.in_amount // quoted for leg in legs]
    largest = max(range(len(legs)), key=lambda i: legs[i].in_amount)
    shares[largest] += amount - sum(shares)
    return shares


def execute_route(market: Market, route: SwapPlan, slot: int) -> Fill:
    amount = route.in_amount
    worst: tuple[Fraction, str] | None = None
    note = None
    for legs in hops(route):
        produced = 0
        for leg, leg_in in zip(legs, proportional_inputs(amount, legs), strict=True):
            got = 0
            if leg_in > 0:
                token_in = resolve_token(leg.input_mint or route.input_mint)
                try:
                    got = market.swap(leg.pool, token_in, leg_in, slot).amount_out
                except InsufficientLiquidity:
                    note = f"{leg.venue} pool {leg.pool} ran out of liquidity"
            kept = Fraction(got, leg.out_amount) if leg.out_amount else Fraction(1)
            if worst is None or kept < worst[0]:
                worst = (kept, leg.venue)
            produced += got
        amount = produced
    return Fill(amount, worst[1] if worst else "", note)
