"""Route choice (single pools, splits, multi-hop, network fees), min-out, fees and tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dexec.market.fees import (
    PRIORITY_FEE_REFERENCE_CU,
    SWAP_CU,
    TRANSACTION_BASE_CU,
    UNWRAP_SOL_CU,
    WRAP_SOL_CU,
    compute_unit_limit,
)
from dexec.market.market import Market
from dexec.market.market_file import parse_market
from dexec.market.routing import NoRoute, find_route, min_out, network_fee_lamports
from dexec.market.tokens import (
    TOKENS,
    WSOL_MINT,
    BadAmount,
    UnknownToken,
    from_base_units,
    resolve_token,
    to_base_units,
)
from dexec.market.venues import METEORA, RAYDIUM, PoolKind
from dexec.orders.events import Route
from tests.support.markets import STILL_SOL_USDC

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
USDT = resolve_token("USDT")
BONK = resolve_token("BONK")
JUP = resolve_token("JUP")
SLOT = 4_400_000_321
PRIORITY = 10_000

DLMM = """
[[pools]]
kind = "meteora-dlmm"
pair = "SOL/USDC"
bin_step = 10
base_factor = 10000
bins_each_side = 50
liquidity_usd = {liquidity}
"""
AMM_V4 = """
[[pools]]
kind = "raydium-amm-v4"
pair = "SOL/USDC"
liquidity_usd = {liquidity}
"""
CPMM_1_PERCENT = """
[[pools]]
kind = "raydium-cpmm"
pair = "SOL/USDC"
trade_fee_rate = 10000
liquidity_usd = {liquidity}
"""


def still_market(*pools: str) -> Market:
    """A market whose prices never move (no price path, no drift): SOL at 150 USDC."""
    return Market(1, parse_market(STILL_SOL_USDC + "".join(pools)))


def route(
    market: Market,
    token_in=SOL,
    token_out=USDC,
    amount: int = 10**9,
    *,
    slippage: int = 50,
    venues: frozenset[str] | None = None,
    failed: dict[str, str] | None = None,
    priority: int = PRIORITY,
) -> Route:
    return find_route(
        market.view(SLOT, venues),
        token_in,
        token_out,
        amount,
        slippage,
        priority_fee_lamports=priority,
        failed_venues=failed,
    )


def singles(r: Route) -> list:
    return [c for c in r.candidates if len(c.route_plan) == 1]


def test_picks_the_pool_that_leaves_the_most() -> None:
    market = still_market(
        AMM_V4.format(liquidity=2_000_000), CPMM_1_PERCENT.format(liquidity=2_000_000)
    )
    r = route(market)
    assert [leg.label for leg in r.route_plan] == ["Raydium"]
    assert r.route_plan[0].percent == 100
    assert r.out_amount == max(c.out_amount for c in r.candidates)
    assert r.reason.startswith("raydium SOL/USDC AMM v4 gives ")
    assert "bps more than raydium SOL/USDC CPMM 1%" in r.reason


def test_route_carries_jupiter_fields_and_the_threshold() -> None:
    market = still_market(AMM_V4.format(liquidity=2_000_000))
    r = route(market, slippage=50)
    assert (r.input_mint, r.output_mint, r.in_amount) == (SOL.mint, USDC.mint, 10**9)
    assert r.other_amount_threshold == r.out_amount * 9_950 // 10_000
    assert r.slippage_bps == 50 and r.swap_mode == "ExactIn"
    assert r.context_slot == SLOT
    leg = r.route_plan[0]
    assert (leg.input_mint, leg.output_mint, leg.fee_mint) == (SOL.mint, USDC.mint, SOL.mint)
    # 0.25% of 1 SOL, rounded up.
    assert leg.fee_amount == 2_500_000
    assert r.price_impact_pct > 0


def test_a_large_order_splits_when_that_beats_one_venue() -> None:
    # The concentrated DLMM pool is best at first, but a big order walks it down past the
    # deep constant-product pool's price.
    market = still_market(AMM_V4.format(liquidity=40_000_000), DLMM.format(liquidity=2_000_000))
    r = route(market, amount=2_000 * 10**9)
    assert {leg.venue for leg in r.route_plan} == {RAYDIUM, METEORA}
    assert sum(leg.percent for leg in r.route_plan) == 100
    assert all(leg.percent % 5 == 0 for leg in r.route_plan)
    assert sum(leg.in_amount for leg in r.route_plan) == r.in_amount
    assert r.out_amount == sum(leg.out_amount for leg in r.route_plan)
    best_single = max(singles(r), key=lambda c: c.net_out_amount)
    assert r.out_amount > best_single.out_amount
    assert r.reason.startswith("split ")
    # The split pays for its second leg.
    assert r.network_fee_lamports > best_single.network_fee_lamports


def test_a_small_order_stays_in_one_pool() -> None:
    market = still_market(AMM_V4.format(liquidity=40_000_000), DLMM.format(liquidity=2_000_000))
    r = route(market, amount=10**9)
    assert len(r.route_plan) == 1


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=1_000),
    sol=st.integers(min_value=1, max_value=40_000),
    slot=st.integers(min_value=0, max_value=10**9),
)
def test_the_chosen_route_is_never_worse_than_the_best_single_venue(
    seed: int, sol: int, slot: int
) -> None:
    market = Market(seed)
    r = find_route(market.view(slot), SOL, USDC, sol * 10**8, 50, priority_fee_lamports=PRIORITY)
    chosen = next(c for c in r.candidates if c.chosen)
    assert all(chosen.net_out_amount >= c.net_out_amount for c in singles(r))
    splits = [c for c in r.candidates if len(c.route_plan) > 1]
    assert all(s.out_amount > max(c.out_amount for c in singles(r)) for s in splits)


def test_route_records_every_candidate_each_pool_quote_and_the_choice() -> None:
    market = Market(7)
    r = route(market, amount=500 * 10**9)
    pools = market.pools_between(SOL, USDC)
    assert {q.pool for q in r.quotes} == {p.address for p in pools}
    assert {q.venue for q in r.quotes} == {RAYDIUM, METEORA}
    assert len(singles(r)) == len(pools)
    assert [c.chosen for c in r.candidates].count(True) == 1
    chosen = next(c for c in r.candidates if c.chosen)
    assert chosen.route_plan == r.route_plan
    assert chosen.net_out_amount == chosen.out_amount - chosen.network_fee_in_output
    assert r.reason.startswith(chosen.description)


def test_multi_hop_through_a_hub_when_the_pair_has_no_pool() -> None:
    market = Market(7)
    r = route(market, BONK, JUP, 10**8 * 10**5)
    hub = resolve_token(r.route_plan[0].output_mint)
    assert hub.symbol in {"SOL", "USDC"}
    first = [leg for leg in r.route_plan if leg.input_mint == BONK.mint]
    second = [leg for leg in r.route_plan if leg.input_mint == hub.mint]
    assert first and second and len(first) + len(second) == len(r.route_plan)
    assert all(leg.output_mint == JUP.mint for leg in second)
    assert sum(leg.in_amount for leg in first) == r.in_amount
    assert sum(leg.in_amount for leg in second) == sum(leg.out_amount for leg in first)
    assert r.out_amount == sum(leg.out_amount for leg in second)
    assert f"no BONK/JUP pool, so through {hub.symbol}" in r.reason
    # Both hubs were tried.
    assert {c.description.split(":")[0] for c in r.candidates} == {"BONK→SOL→JUP", "BONK→USDC→JUP"}


def test_no_route_when_no_pool_and_no_hub_connects_the_tokens() -> None:
    market = still_market(AMM_V4.format(liquidity=1_000_000))
    with pytest.raises(NoRoute) as info:
        route(market, BONK, JUP, 10**9, failed={METEORA: "no pool for this pair"})
    assert info.value.args[1] == {METEORA: "no pool for this pair"}


def test_no_route_when_no_venue_answered() -> None:
    with pytest.raises(NoRoute):
        route(Market(7), venues=frozenset(), failed={RAYDIUM: "timeout", METEORA: "timeout"})


def test_no_route_when_every_output_rounds_to_zero() -> None:
    with pytest.raises(NoRoute):
        route(Market(7), USDC, SOL, 1)


def test_only_the_venues_that_answered_are_used() -> None:
    r = route(Market(7), venues=frozenset({RAYDIUM}), failed={METEORA: "timeout"})
    assert {leg.venue for leg in r.route_plan} == {RAYDIUM}
    assert {q.venue for q in r.quotes} == {RAYDIUM}
    assert r.failed_venues == {METEORA: "timeout"}
    assert r.reason.endswith("; meteora unavailable (timeout)")


def test_network_fees_can_outweigh_a_better_pool_output() -> None:
    # The DLMM pool gives more (0.1% fee against 0.25%) but its swap costs 30k more compute
    # units; at a high priority fee, on a tiny order, that costs more than it gains.
    market = still_market(AMM_V4.format(liquidity=2_000_000), DLMM.format(liquidity=2_000_000))
    tiny = route(market, amount=10**6, priority=2_000_000)
    by_label = {c.route_plan[0].label: c for c in singles(tiny)}
    assert by_label["Meteora DLMM"].out_amount > by_label["Raydium"].out_amount
    assert tiny.route_plan[0].label == "Raydium"
    normal = route(market, amount=10**9, priority=PRIORITY)
    assert normal.route_plan[0].label == "Meteora DLMM"


def test_network_fee_counts_signature_priority_and_sol_wrapping() -> None:
    market = Market(7)
    sell_sol = route(market, SOL, USDC, 10**9)
    kinds = [PoolKind(market.pool(leg.pool).kind) for leg in sell_sol.route_plan]
    units = TRANSACTION_BASE_CU + sum(SWAP_CU[k] for k in kinds) + WRAP_SOL_CU
    assert sell_sol.compute_unit_limit == units
    assert sell_sol.network_fee_lamports == 5_000 + -(
        -PRIORITY * units // PRIORITY_FEE_REFERENCE_CU
    )
    buy_sol = route(market, USDC, SOL, 100 * 10**6)
    assert buy_sol.compute_unit_limit is not None and buy_sol.compute_unit_limit >= (
        TRANSACTION_BASE_CU + UNWRAP_SOL_CU + min(SWAP_CU.values())
    )
    # SOL out: the fee in the output token is the fee itself, in lamports.
    chosen = next(c for c in buy_sol.candidates if c.chosen)
    assert chosen.network_fee_in_output == buy_sol.network_fee_lamports


def test_compute_units_of_a_route() -> None:
    amm = PoolKind.RAYDIUM_AMM_V4
    assert compute_unit_limit([amm], USDT.mint, USDC.mint) == TRANSACTION_BASE_CU + SWAP_CU[amm]
    both = compute_unit_limit([amm], WSOL_MINT, WSOL_MINT)
    assert both == TRANSACTION_BASE_CU + SWAP_CU[amm] + WRAP_SOL_CU + UNWRAP_SOL_CU


def test_the_same_seed_gives_the_same_quotes() -> None:
    for token_in, token_out, amount in ((SOL, USDC, 7 * 10**9), (BONK, JUP, 10**13)):
        one = route(Market(5), token_in, token_out, amount)
        two = route(Market(5), token_in, token_out, amount)
        assert one == two
    assert route(Market(5)).out_amount != route(Market(6)).out_amount


def test_price_impact_of_the_route_grows_with_size() -> None:
    market = Market(7)
    impacts = [
        route(market, amount=sol * 10**9).price_impact_pct for sol in (1, 100, 2_000, 20_000)
    ]
    assert impacts == sorted(impacts)
    assert impacts[-1] > impacts[0] >= Decimal(0)


def test_a_finer_split_grid() -> None:
    market = still_market(AMM_V4.format(liquidity=40_000_000), DLMM.format(liquidity=2_000_000))
    r = find_route(
        market.view(SLOT),
        SOL,
        USDC,
        2_000 * 10**9,
        50,
        priority_fee_lamports=PRIORITY,
        split_step_percent=1,
    )
    coarse = route(market, amount=2_000 * 10**9)
    assert sum(leg.percent for leg in r.route_plan) == 100
    # The 1% grid finds a split the default 5% grid cannot express, and it pays more.
    assert any(leg.percent % 5 for leg in r.route_plan)
    assert r.out_amount > coarse.out_amount


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


@pytest.mark.parametrize(
    ("priority", "units", "expected"),
    # The priority fee is bid per 200,000 compute units, rounded up.
    [(10_000, 200_000, 15_000), (10_000, 85_000, 9_250), (10_000, 1, 5_001), (0, 500_000, 5_000)],
)
def test_network_fee_prices_the_compute_unit_limit(
    priority: int, units: int, expected: int
) -> None:
    assert network_fee_lamports(priority, compute_units=units) == expected


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
        (SOL, "1_0"),
        (SOL, "\uff11"),
        (SOL, "\u0661"),
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
