"""Route choice, minimum output, network fees, and token lookup and unit conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dexec.market.market import METEORA, RAYDIUM, Market
from dexec.market.routing import (
    NoRoute,
    choose_route,
    min_out,
    network_fee_lamports,
    quote_venue,
)
from dexec.market.tokens import (
    TOKENS,
    WSOL_MINT,
    BadAmount,
    UnknownToken,
    from_base_units,
    resolve_token,
    to_base_units,
)
from dexec.orders.events import VenueQuote

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
USDT = resolve_token("USDT")
BONK = resolve_token("BONK")


def quote(venue: str, out_amount: int, in_amount: int = 10**9) -> VenueQuote:
    return VenueQuote(
        venue=venue,
        pool=f"{venue}-pool",
        in_amount=in_amount,
        out_amount=out_amount,
        fee_amount=in_amount // 400,
        price_impact_pct=Decimal("0.0123"),
        context_slot=777,
    )


def route_for(quotes: list[VenueQuote], failed: dict[str, str] | None = None, slippage: int = 50):
    return choose_route(SOL, USDC, 10**9, slippage, quotes, failed or {}, 5_000)


def test_picks_the_venue_with_the_larger_output() -> None:
    route = route_for([quote(RAYDIUM, 149_000_000), quote(METEORA, 150_000_000)])
    assert route.route_plan[0].venue == METEORA
    assert route.out_amount == 150_000_000
    assert route.route_plan[0].out_amount == 150_000_000
    assert route.route_plan[0].percent == 100
    assert route.route_plan[0].pool == "meteora-pool"


def test_picks_the_larger_output_whatever_the_order_of_quotes() -> None:
    route = route_for([quote(METEORA, 149_000_000), quote(RAYDIUM, 150_000_000)])
    assert route.route_plan[0].venue == RAYDIUM


def test_threshold_is_output_less_slippage_rounded_down() -> None:
    route = route_for([quote(RAYDIUM, 150_000_001)], slippage=50)
    # 150_000_001 * 9_950 / 10_000 = 149_250_000.995
    assert route.other_amount_threshold == 149_250_000


def test_route_carries_jupiter_fields() -> None:
    best = quote(RAYDIUM, 150_000_000)
    route = route_for([best])
    assert route.input_mint == SOL.mint
    assert route.output_mint == USDC.mint
    assert route.in_amount == 10**9
    assert route.price_impact_pct == best.price_impact_pct
    assert route.context_slot == 777
    assert route.network_fee_lamports == 5_000


def test_route_records_all_quotes_and_failed_venues() -> None:
    quotes = [quote(RAYDIUM, 150_000_000), quote(METEORA, 149_000_000)]
    route = route_for(quotes, {"orca": "timeout"})
    assert route.quotes == quotes
    assert route.failed_venues == {"orca": "timeout"}


def test_reason_names_the_chosen_venue_and_the_runner_up() -> None:
    route = route_for(
        [quote(RAYDIUM, 150_000_000), quote(METEORA, 149_000_000)], {"orca": "timeout"}
    )
    assert route.reason.startswith("raydium gives 150.000000 USDC")
    # (150 - 149) / 149 * 10_000 = 67.1 -> 67 bps
    assert "67 bps more than meteora" in route.reason
    assert "orca unavailable (timeout)" in route.reason


def test_single_quote_reason_mentions_the_venue() -> None:
    route = route_for([quote(METEORA, 150_000_000)], {RAYDIUM: "no pool for this pair"})
    assert METEORA in route.reason
    assert route.route_plan[0].venue == METEORA


def test_zero_output_quotes_are_not_chosen_but_recorded() -> None:
    quotes = [quote(RAYDIUM, 0), quote(METEORA, 1)]
    route = route_for(quotes)
    assert route.route_plan[0].venue == METEORA
    assert route.quotes == quotes


def test_no_quotes_raises_no_route() -> None:
    with pytest.raises(NoRoute) as info:
        route_for([], {RAYDIUM: "timeout", METEORA: "timeout"})
    assert info.value.args[1] == {RAYDIUM: "timeout", METEORA: "timeout"}


def test_only_zero_output_quotes_raise_no_route() -> None:
    with pytest.raises(NoRoute):
        route_for([quote(RAYDIUM, 0), quote(METEORA, 0)])


def test_routing_real_quotes_picks_the_best_venue() -> None:
    market = Market(8)
    quotes = [quote_venue(market, v, SOL, USDC, 10**9, 100) for v in (RAYDIUM, METEORA)]
    route = choose_route(SOL, USDC, 10**9, 100, quotes, {}, network_fee_lamports(0))
    assert route.out_amount == max(q.out_amount for q in quotes)
    assert route.out_amount == quotes[0].out_amount or route.out_amount == quotes[1].out_amount


def test_quote_venue_reports_the_pool_swap() -> None:
    market = Market(8)
    pool, result = market.swap(RAYDIUM, SOL, USDC, 10**9, 100)
    q = quote_venue(market, RAYDIUM, SOL, USDC, 10**9, 100)
    assert q.pool == pool.address
    assert q.out_amount == result.amount_out
    assert q.fee_amount == result.fee
    assert q.context_slot == 100


@pytest.mark.parametrize(
    ("out", "bps", "expected"),
    [
        (1_000_000, 50, 995_000),
        (1_000_000, 0, 1_000_000),
        (1_000_000, 10_000, 0),
        (999, 50, 994),  # 994.005 rounded down
        (1, 1, 0),
        (0, 50, 0),
    ],
)
def test_min_out_examples(out: int, bps: int, expected: int) -> None:
    assert min_out(out, bps) == expected


@given(st.integers(min_value=0, max_value=10**20), st.integers(min_value=0, max_value=10_000))
def test_min_out_never_exceeds_output(out: int, bps: int) -> None:
    threshold = min_out(out, bps)
    assert 0 <= threshold <= out
    assert threshold * 10_000 <= out * (10_000 - bps) < (threshold + 1) * 10_000


@pytest.mark.parametrize(
    ("priority", "signatures", "expected"),
    [(0, 1, 5_000), (10_000, 1, 15_000), (0, 2, 10_000), (1_234, 3, 16_234)],
)
def test_network_fee_is_5000_per_signature_plus_priority(
    priority: int, signatures: int, expected: int
) -> None:
    assert network_fee_lamports(priority, signatures) == expected


def test_network_fee_defaults_to_one_signature() -> None:
    assert network_fee_lamports(2_500) == 7_500


@pytest.mark.parametrize("key", ["SOL", "sol", "Sol", " sol "])
def test_resolve_symbol_in_any_case(key: str) -> None:
    assert resolve_token(key) is SOL


@pytest.mark.parametrize("key", ["wSOL", "WSOL", "wsol", WSOL_MINT])
def test_wsol_and_its_mint_are_sol(key: str) -> None:
    assert resolve_token(key) is SOL


@pytest.mark.parametrize("token", TOKENS, ids=lambda t: t.symbol)
def test_resolve_by_mint_and_symbol(token) -> None:
    assert resolve_token(token.mint) is token
    assert resolve_token(token.symbol.lower()) is token


@pytest.mark.parametrize(
    "key", ["DOGE", "", "SOL/USDC", "So1111111111111111111111111111111111111111"]
)
def test_unknown_token_raises(key: str) -> None:
    with pytest.raises(UnknownToken):
        resolve_token(key)


def test_token_decimals() -> None:
    assert (SOL.decimals, USDC.decimals, USDT.decimals, BONK.decimals) == (9, 6, 6, 5)


@pytest.mark.parametrize(
    ("token", "amount", "expected"),
    [
        (SOL, "1.5", 1_500_000_000),
        (SOL, "0.000000001", 1),
        (SOL, Decimal("0.1"), 100_000_000),
        (SOL, 2, 2_000_000_000),
        (SOL, " 3 ", 3_000_000_000),
        (SOL, "1.500000000", 1_500_000_000),
        (USDC, "150.25", 150_250_000),
        (BONK, "12345.6789", 1_234_567_890),
        (USDC, "1e3", 1_000_000_000),
    ],
)
def test_to_base_units(token, amount, expected: int) -> None:
    units = to_base_units(token, amount)
    assert units == expected
    assert type(units) is int


@pytest.mark.parametrize(
    ("token", "amount"),
    [
        (SOL, "0.0000000001"),
        (USDC, "1.0000001"),
        (BONK, "0.000001"),
        (SOL, "0"),
        (SOL, "0.000"),
        (SOL, "-1"),
        (SOL, Decimal("-0.5")),
        (SOL, "abc"),
        (SOL, ""),
        (SOL, "1.2.3"),
        (SOL, "NaN"),
        (SOL, "sNaN"),
        (SOL, "Infinity"),
        (SOL, "-Infinity"),
    ],
)
def test_to_base_units_refuses_bad_amounts(token, amount) -> None:
    with pytest.raises(BadAmount):
        to_base_units(token, amount)


def test_from_base_units() -> None:
    assert from_base_units(SOL, 1_500_000_000) == Decimal("1.5")
    assert from_base_units(USDC, 1) == Decimal("0.000001")
    assert str(from_base_units(USDC, 150_000_000)) == "150.000000"


@given(
    st.sampled_from(TOKENS),
    # SPL token amounts are u64.
    st.integers(min_value=1, max_value=2**64 - 1),
)
def test_base_units_round_trip(token, units: int) -> None:
    assert to_base_units(token, from_base_units(token, units)) == units
    assert to_base_units(token, str(from_base_units(token, units))) == units
