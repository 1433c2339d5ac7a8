"""Executing a route at its landing slot: splits, hops, and who reports a shortfall."""

from __future__ import annotations

from dexec.market.execution import hops, proportional_inputs
from dexec.market.market import Market
from dexec.market.routing import find_route
from dexec.market.tokens import resolve_token
from dexec.market.venues import METEORA, RAYDIUM
from dexec.orders.events import Route, RouteLeg

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
BONK = resolve_token("BONK")
JUP = resolve_token("JUP")
SLOT = 4_400_000_555


def quote(market: Market, token_in, token_out, amount: int) -> Route:
    return find_route(
        market.view(SLOT), token_in, token_out, amount, 50, priority_fee_lamports=10_000
    )


def leg(venue: str, in_amount: int, out_amount: int, input_mint=None, output_mint=None):
    return RouteLeg(
        venue=venue,
        pool=f"{venue}-pool",
        in_amount=in_amount,
        out_amount=out_amount,
        fee_amount=0,
        percent=0,
        input_mint=input_mint,
        output_mint=output_mint,
    )


def test_at_the_quoted_slot_execution_gives_exactly_the_quote() -> None:
    market = Market(7)
    for token_in, token_out, amount in (
        (SOL, USDC, 3 * 10**9),
        (SOL, USDC, 30_000 * 10**9),  # a split
        (BONK, JUP, 10**13),  # two hops
    ):
        route = quote(market, token_in, token_out, amount)
        fill = market.execute(route, SLOT)
        assert fill.out_amount == route.out_amount
        assert fill.note is None


def test_a_few_slots_later_the_output_moves_a_little() -> None:
    market = Market(7)
    route = quote(market, SOL, USDC, 3 * 10**9)
    for later in range(1, 6):
        out = market.execute(route, SLOT + later).out_amount
        assert abs(out - route.out_amount) * 10_000 < 25 * route.out_amount


def test_legs_are_grouped_by_hop() -> None:
    route = quote(Market(7), BONK, JUP, 10**13)
    grouped = hops(route)
    assert len(grouped) == 2
    assert {leg.input_mint for leg in grouped[0]} == {BONK.mint}
    assert {leg.output_mint for leg in grouped[1]} == {JUP.mint}


def test_legs_without_mints_are_one_hop() -> None:
    # Routes recorded before multi-hop existed carry no per-leg mints.
    route = quote(Market(7), SOL, USDC, 10**9)
    legacy = route.model_copy(update={"route_plan": [leg(RAYDIUM, 600, 1), leg(METEORA, 400, 1)]})
    assert [len(h) for h in hops(legacy)] == [2]


def test_a_later_hop_takes_what_the_first_really_produced_in_the_quoted_proportions() -> None:
    legs = [leg(RAYDIUM, 700, 0), leg(METEORA, 300, 0)]
    assert proportional_inputs(1_000, legs) == [700, 300]
    # 1_001 * 0.7 = 700.7 -> 700, 1_001 * 0.3 = 300.3 -> 300, the rest to the larger leg.
    assert proportional_inputs(1_001, legs) == [701, 300]
    assert proportional_inputs(10, legs) == [7, 3]
    assert sum(proportional_inputs(999_999, legs)) == 999_999


def test_the_leg_that_fell_furthest_below_its_quote_reports_the_shortfall() -> None:
    market = Market(7)
    route = quote(market, SOL, USDC, 30_000 * 10**9)
    assert len(route.route_plan) > 1
    # Pretend one leg had been quoted far higher: it is the one that fell short.
    inflated = route.route_plan[-1]
    plan = [
        *route.route_plan[:-1],
        inflated.model_copy(update={"out_amount": inflated.out_amount * 2}),
    ]
    fill = market.execute(route.model_copy(update={"route_plan": plan}), SLOT)
    assert fill.worst_venue == inflated.venue
