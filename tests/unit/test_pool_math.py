"""Constant-product pool math and the seeded simulated market."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dexec.market.market import (
    DRIFT_EPOCH_SLOTS,
    MAX_DRIFT_BPS,
    METEORA,
    RAYDIUM,
    VENUE_FEE_BPS,
    VENUES,
    Market,
    NoPool,
)
from dexec.market.pools import ceil_div, constant_product_swap
from dexec.market.tokens import resolve_token

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
BONK = resolve_token("BONK")
JUP = resolve_token("JUP")

reserves = st.integers(min_value=1, max_value=10**18)
amounts = st.integers(min_value=1, max_value=10**15)
fee_bps = st.integers(min_value=0, max_value=1_000)


def test_hand_checked_raydium_swap() -> None:
    # fee = ceil(10_000 * 25 / 10_000) = 25; in' = 9_975;
    # out = floor(2_000_000 * 9_975 / 1_009_975) = floor(19_950_000_000 / 1_009_975)
    # 1_009_975 * 19_752 = 19_949_026_200 <= 19_950_000_000
    # 1_009_975 * 19_753 = 19_950_036_175 > 19_950_000_000, so out = 19_752
    result = constant_product_swap(1_000_000, 2_000_000, 10_000, 25)
    assert result.fee == 25
    assert result.amount_in == 10_000
    assert result.amount_out == 19_752
    assert result.spot_out == Decimal(20_000)


def test_fee_is_rounded_up() -> None:
    # 399 * 25 / 10_000 = 0.9975 -> 1; 401 * 25 / 10_000 = 1.0025 -> 2
    assert constant_product_swap(10**9, 10**9, 399, 25).fee == 1
    assert constant_product_swap(10**9, 10**9, 400, 25).fee == 1
    assert constant_product_swap(10**9, 10**9, 401, 25).fee == 2


def test_zero_fee_swap_is_plain_constant_product() -> None:
    result = constant_product_swap(1_000, 1_000, 1_000, 0)
    assert result.fee == 0
    assert result.amount_out == 500


@pytest.mark.parametrize("amount", [0, -1])
def test_non_positive_input_is_refused(amount: int) -> None:
    with pytest.raises(ValueError):
        constant_product_swap(1_000_000, 2_000_000, amount, 25)


def test_ceil_div() -> None:
    assert ceil_div(10, 5) == 2
    assert ceil_div(11, 5) == 3
    assert ceil_div(0, 5) == 0


def test_hand_checked_price_impact() -> None:
    # after fee at spot: 20_000 * 9_975 / 10_000 = 19_950; (19_950 - 19_752) / 19_950 = 0.9925 %
    assert constant_product_swap(1_000_000, 2_000_000, 10_000, 25).price_impact_pct == Decimal(
        "0.9925"
    )


def test_price_impact_grows_with_size() -> None:
    impacts = [
        constant_product_swap(10**12, 2 * 10**12, 10**k, 25).price_impact_pct for k in range(6, 13)
    ]
    assert impacts == sorted(impacts)
    assert len(set(impacts)) == len(impacts)


@given(reserves, reserves, amounts, amounts, fee_bps)
def test_output_is_monotone_in_input(x: int, y: int, a: int, b: int, fee: int) -> None:
    small, large = sorted((a, b))
    out_small = constant_product_swap(x, y, small, fee).amount_out
    out_large = constant_product_swap(x, y, large, fee).amount_out
    assert out_small <= out_large


@given(reserves, reserves, amounts, fee_bps)
def test_output_is_less_than_reserve_out(x: int, y: int, a: int, fee: int) -> None:
    assert constant_product_swap(x, y, a, fee).amount_out < y


@given(reserves, reserves, amounts, fee_bps)
def test_fee_is_the_ceiling_of_the_bps_share(x: int, y: int, a: int, fee: int) -> None:
    result = constant_product_swap(x, y, a, fee)
    assert result.fee >= 0
    assert result.fee * 10_000 >= a * fee
    assert (result.fee - 1) * 10_000 < a * fee
    assert result.fee <= a


@given(reserves, reserves, amounts, fee_bps)
def test_output_is_rounded_against_the_trader(x: int, y: int, a: int, fee: int) -> None:
    result = constant_product_swap(x, y, a, fee)
    net_in = a - result.fee
    exact = Fraction(y * net_in, x + net_in)
    assert result.amount_out <= exact
    assert exact - result.amount_out < 1


@given(reserves, reserves, amounts, fee_bps)
def test_output_never_beats_the_spot_price(x: int, y: int, a: int, fee: int) -> None:
    result = constant_product_swap(x, y, a, fee)
    assert result.amount_out <= Fraction(y * a, x)


@given(
    x=st.integers(min_value=10**6, max_value=10**15),
    y=st.integers(min_value=10**10, max_value=10**18),
    data=st.data(),
    fee=st.integers(min_value=0, max_value=100),
)
def test_price_impact_grows_with_size_when_rounding_is_negligible(
    x: int, y: int, data: st.DataObject, fee: int
) -> None:
    a = data.draw(st.integers(min_value=x // 500 + 2, max_value=10 * x))
    b = data.draw(st.integers(min_value=2 * a, max_value=40 * x))
    n_a = a - ceil_div(a * fee, 10_000)
    # The floor of the output adds at most x/(y·n) to the impact; keep it below the size effect.
    assume(y * n_a**2 > 2 * (x + 2 * n_a) ** 2)
    small = constant_product_swap(x, y, a, fee).price_impact_pct
    large = constant_product_swap(x, y, b, fee).price_impact_pct
    assert Decimal(0) <= small <= large


def test_same_seed_gives_the_same_market() -> None:
    one, two = Market(42), Market(42)
    assert one.pools() == two.pools()
    for pool in one.pools():
        for slot in (0, 1_000, 123_456):
            assert one.drift_bps(pool, slot) == two.drift_bps(pool, slot)
    for venue in VENUES:
        for slot in (0, 50, 9_999):
            assert one.swap(venue, SOL, USDC, 10**9, slot) == two.swap(
                venue, SOL, USDC, 10**9, slot
            )


def test_different_seeds_give_different_reserves() -> None:
    reserves_of = {
        seed: [(p.reserve_base, p.reserve_quote) for p in Market(seed).pools()] for seed in (1, 2)
    }
    assert reserves_of[1] != reserves_of[2]


def test_each_pair_has_one_pool_per_venue_with_the_venue_fee() -> None:
    market = Market(7)
    pools = market.pools()
    assert len(pools) == 2 * 6
    for pool in pools:
        assert pool.fee_bps == VENUE_FEE_BPS[pool.venue]
        assert pool.reserve_base > 0 and pool.reserve_quote > 0
    assert market.pool(RAYDIUM, SOL, USDC).fee_bps == 25
    assert market.pool(METEORA, SOL, USDC).fee_bps == 20


def test_pool_is_found_in_either_direction() -> None:
    market = Market(7)
    assert market.pool(RAYDIUM, SOL, USDC) is market.pool(RAYDIUM, USDC, SOL)


def test_missing_pair_raises_no_pool() -> None:
    with pytest.raises(NoPool):
        Market(7).pool(RAYDIUM, BONK, JUP)


@pytest.mark.parametrize("seed", [0, 1, 99])
@pytest.mark.parametrize("venue", VENUES)
def test_sol_usdc_pool_is_priced_near_150(seed: int, venue: str) -> None:
    pool = Market(seed).pool(venue, SOL, USDC)
    price = (Decimal(pool.reserve_quote) / 10**6) / (Decimal(pool.reserve_base) / 10**9)
    # Venues start at most 20 bps off the reference price.
    assert abs(price - 150) <= Decimal("150") * Decimal("0.0021")


@pytest.mark.parametrize("venue", VENUES)
def test_selling_one_sol_gives_about_150_usdc(venue: str) -> None:
    _, result = Market(3).swap(venue, SOL, USDC, 10**9, slot=0)
    assert 148 * 10**6 < result.amount_out < 152 * 10**6


@pytest.mark.parametrize("venue", VENUES)
def test_buying_sol_with_150_usdc_gives_about_one_sol(venue: str) -> None:
    _, result = Market(3).swap(venue, USDC, SOL, 150 * 10**6, slot=0)
    assert Decimal("0.985") * 10**9 < result.amount_out < Decimal("1.015") * 10**9


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    slot=st.integers(min_value=0, max_value=10**9),
    index=st.integers(min_value=0, max_value=11),
)
def test_drift_stays_within_bounds(seed: int, slot: int, index: int) -> None:
    market = Market(seed)
    pool = market.pools()[index]
    assert -MAX_DRIFT_BPS <= market.drift_bps(pool, slot) <= MAX_DRIFT_BPS


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    epoch=st.integers(min_value=0, max_value=10**7),
    offset=st.integers(min_value=0, max_value=DRIFT_EPOCH_SLOTS - 1),
)
def test_drift_is_constant_within_an_epoch(seed: int, epoch: int, offset: int) -> None:
    market = Market(seed)
    pool = market.pools()[0]
    start = epoch * DRIFT_EPOCH_SLOTS
    assert market.drift_bps(pool, start + offset) == market.drift_bps(pool, start)


def test_drift_changes_over_epochs() -> None:
    market = Market(5)
    pool = market.pool(RAYDIUM, SOL, USDC)
    drifts = {market.drift_bps(pool, epoch * DRIFT_EPOCH_SLOTS) for epoch in range(50)}
    assert len(drifts) > 1


def test_positive_drift_gives_more_quote_for_base() -> None:
    market = Market(11)
    pool = market.pool(RAYDIUM, SOL, USDC)
    by_drift = {}
    for epoch in range(200):
        slot = epoch * DRIFT_EPOCH_SLOTS
        by_drift.setdefault(market.drift_bps(pool, slot), slot)
    low, high = min(by_drift), max(by_drift)
    assert low < high
    sell_low = market.swap(RAYDIUM, SOL, USDC, 10**9, by_drift[low])[1].amount_out
    sell_high = market.swap(RAYDIUM, SOL, USDC, 10**9, by_drift[high])[1].amount_out
    assert sell_high > sell_low
