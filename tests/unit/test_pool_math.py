"""Constant-product pool math (Raydium AMM v4 and CPMM): hand-checked examples and properties."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dexec.market.constant_product import (
    AMM_V4_FEE_DENOMINATOR,
    AMM_V4_FEE_NUMERATOR,
    CPMM_FEE_DENOMINATOR,
    CPMM_FEE_TIERS,
    constant_product_swap,
)
from dexec.market.pools import ceil_div, percent

reserves = st.integers(min_value=1, max_value=10**18)
amounts = st.integers(min_value=1, max_value=10**15)
# (numerator, denominator): AMM v4's 25/10_000, every CPMM tier over 1e6, and arbitrary bps.
fee_rates = st.one_of(
    st.just((AMM_V4_FEE_NUMERATOR, AMM_V4_FEE_DENOMINATOR)),
    st.sampled_from(sorted(CPMM_FEE_TIERS)).map(lambda r: (r, CPMM_FEE_DENOMINATOR)),
    st.integers(min_value=0, max_value=1_000).map(lambda r: (r, 10_000)),
)


def test_hand_checked_amm_v4_swap() -> None:
    # fee = ceil(10_000 * 25 / 10_000) = 25; in' = 9_975;
    # out = floor(2_000_000 * 9_975 / 1_009_975) = floor(19_950_000_000 / 1_009_975)
    # 1_009_975 * 19_752 = 19_949_026_200 <= 19_950_000_000
    # 1_009_975 * 19_753 = 19_950_036_175 > 19_950_000_000, so out = 19_752
    result = constant_product_swap(1_000_000, 2_000_000, 10_000, 25)
    assert result.fee == 25
    assert result.amount_in == 10_000
    assert result.amount_out == 19_752
    assert result.spot_out == 20_000


def test_hand_checked_cpmm_one_percent_tier() -> None:
    # fee = ceil(10_000 * 10_000 / 1_000_000) = 100; in' = 9_900;
    # out = floor(2_000_000 * 9_900 / 1_009_900) = floor(19_800_000_000 / 1_009_900)
    # 1_009_900 * 19_605 = 19_799_089_500 <= 19_800_000_000 < 19_800_099_400 = 1_009_900 * 19_606
    result = constant_product_swap(1_000_000, 2_000_000, 10_000, 10_000, CPMM_FEE_DENOMINATOR)
    assert (result.fee, result.amount_out) == (100, 19_605)


def test_hand_checked_cpmm_one_bps_tier_rounds_the_fee_up() -> None:
    # 10_000 * 100 / 1e6 = 1 exactly; 10_001 * 100 / 1e6 = 1.0001 -> 2
    assert constant_product_swap(10**6, 2 * 10**6, 10_000, 100, CPMM_FEE_DENOMINATOR).fee == 1
    assert constant_product_swap(10**6, 2 * 10**6, 10_001, 100, CPMM_FEE_DENOMINATOR).fee == 2


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


def test_percent_is_exact_to_four_decimals() -> None:
    assert percent(Fraction(1, 3)) == Decimal("33.3333")
    assert percent(Fraction(0)) == Decimal(0)


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


@given(reserves, reserves, amounts, amounts, fee_rates)
def test_output_is_monotone_in_input(x: int, y: int, a: int, b: int, fee: tuple[int, int]) -> None:
    small, large = sorted((a, b))
    out_small = constant_product_swap(x, y, small, *fee).amount_out
    out_large = constant_product_swap(x, y, large, *fee).amount_out
    assert out_small <= out_large


@given(reserves, reserves, amounts, fee_rates)
def test_output_is_less_than_reserve_out(x: int, y: int, a: int, fee: tuple[int, int]) -> None:
    assert constant_product_swap(x, y, a, *fee).amount_out < y


@given(reserves, reserves, amounts, fee_rates)
def test_fee_is_the_ceiling_of_the_rate_share(x: int, y: int, a: int, fee: tuple[int, int]) -> None:
    numerator, denominator = fee
    result = constant_product_swap(x, y, a, numerator, denominator)
    assert result.fee >= 0
    assert result.fee * denominator >= a * numerator
    assert (result.fee - 1) * denominator < a * numerator
    assert result.fee <= a


@given(reserves, reserves, amounts, fee_rates)
def test_output_is_rounded_against_the_trader(x: int, y: int, a: int, fee: tuple[int, int]) -> None:
    result = constant_product_swap(x, y, a, *fee)
    net_in = a - result.fee
    exact = Fraction(y * net_in, x + net_in)
    assert result.amount_out <= exact
    assert exact - result.amount_out < 1


@given(reserves, reserves, amounts, fee_rates)
def test_output_never_beats_the_spot_price(x: int, y: int, a: int, fee: tuple[int, int]) -> None:
    result = constant_product_swap(x, y, a, *fee)
    assert result.amount_out <= Fraction(y * a, x)
    assert result.amount_out <= result.ideal_out


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
