"""Meteora DLMM bins: prices, fees, walking the bins; hand-checked examples and properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dexec.market.dlmm import (
    FEE_PRECISION,
    MAX_FEE_RATE,
    ONE_Q64,
    Bin,
    DlmmBook,
    DlmmFees,
    bin_price,
    bin_price_q64,
    fee_for_amount,
    fee_from_amount,
)
from dexec.market.pools import InsufficientLiquidity, SwapResult

# 0.1% base fee (10_000 * 10 * 10 = 1_000_000 over 1e9), no variable fee.
FLAT = DlmmFees(
    bin_step=10, base_factor=10_000, variable_fee_control=0, max_volatility_accumulator=0
)


def three_bins(fees: DlmmFees = FLAT) -> DlmmBook:
    """Bin 0 (price exactly 1) holds 1,000 of each; bin -1 holds Y, bin 1 holds X."""
    return DlmmBook(fees, 0, [Bin(-1, 0, 1_000), Bin(0, 1_000, 1_000), Bin(1, 1_000, 0)])


def test_bin_prices_are_powers_of_one_plus_the_bin_step() -> None:
    assert bin_price(10, 0) == 1
    assert bin_price(10, 1) == Fraction(10_010, 10_000)
    assert bin_price(10, -2) == Fraction(10_000, 10_010) ** 2
    assert bin_price_q64(10, 0) == (ONE_Q64, ONE_Q64)
    # 2^64 * 10_000 / 10_010 = 18_428_315_757_951_600_015.98...
    assert bin_price_q64(10, -1) == (18_428_315_757_951_600_015, 18_428_315_757_951_600_016)


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=-2_000, max_value=2_000))
def test_q64_prices_are_the_exact_floor_and_ceiling(bin_step: int, bin_id: int) -> None:
    exact = bin_price(bin_step, bin_id) * ONE_Q64
    floor, ceiling = bin_price_q64(bin_step, bin_id)
    assert floor <= exact <= ceiling
    assert ceiling - floor == (0 if exact.denominator == 1 else 1)


def test_hand_checked_fee_rates() -> None:
    fees = DlmmFees(10, 10_000, 40_000, 350_000)
    # base = 10_000 * 10 * 10 = 1_000_000 (0.1%)
    assert fees.base_fee_rate == 1_000_000
    # one bin crossed: va = 10_000; ceil(40_000 * (10_000 * 10)^2 / 1e11) = 4_000
    # two: va = 20_000 -> 16_000; 35 or more: va capped at 350_000 -> 4_900_000
    assert [fees.fee_rate(n) for n in (0, 1, 2, 35, 60)] == [
        1_000_000,
        1_004_000,
        1_016_000,
        5_900_000,
        5_900_000,
    ]


def test_fee_rate_is_capped_at_ten_percent() -> None:
    fees = DlmmFees(400, 65_535, 10**9, 10**7)
    assert fees.fee_rate(100) == MAX_FEE_RATE


def test_hand_checked_fee_rounding() -> None:
    # compute_fee_from_amount: ceil(500 * 1e6 / 1e9) = ceil(0.5) = 1
    assert fee_from_amount(500, 1_000_000) == 1
    # compute_fee: ceil(1_000 * 1e6 / (1e9 - 1e6)) = ceil(1.001...) = 2
    assert fee_for_amount(1_000, 1_000_000) == 2


def test_hand_checked_swap_inside_the_active_bin() -> None:
    # fee = ceil(500 * 0.001) = 1; out = floor(499 * 1) = 499 at price 1
    result = three_bins().swap(500, swap_for_y=True)
    assert (result.amount_out, result.fee) == (499, 1)
    assert result.spot_out == 500


def test_hand_checked_swap_across_two_bins() -> None:
    # Bin 0 drains: it needs 1_000 X plus fee ceil(1_000 * 1e6 / 999e6) = 2, so 1_002 in,
    # 1_000 out. The other 498 go to bin -1 at 1/1.001: fee ceil(0.498) = 1, 497 net,
    # out = floor(497 / 1.001) = floor(496.50...) = 496. Total 1_496 out, fee 3.
    result = three_bins().swap(1_500, swap_for_y=True)
    assert (result.amount_out, result.fee) == (1_496, 3)
    # Buying X walks up the same way, at 1.001 in bin 1.
    bought = three_bins().swap(1_500, swap_for_y=False)
    assert (bought.amount_out, bought.fee) == (1_496, 3)


def test_hand_checked_variable_fee_in_the_next_bin() -> None:
    # Bin 0 (price 1) drains: 1e9 Y for 1e9 X plus ceil(1e9 * 1e6 / 999e6) = 1_001_002 fee.
    # The other 498_998_998 X go to bin -1, one bin away: flat, the fee is
    # ceil(498_998_998 * 1_000_000 / 1e9) = 498_999; with the variable fee the rate is
    # 1_004_000 and the fee ceil(500_994.99...) = 500_995.
    bins = [Bin(-1, 0, 10**9), Bin(0, 0, 10**9)]
    variable = DlmmFees(10, 10_000, 40_000, 350_000)
    flat = DlmmBook(FLAT, 0, bins).swap(15 * 10**8, True)
    rising = DlmmBook(variable, 0, bins).swap(15 * 10**8, True)
    assert flat.fee == 1_001_002 + 498_999
    assert rising.fee == 1_001_002 + 500_995
    assert rising.amount_out < flat.amount_out


def test_running_out_of_bins_is_insufficient_liquidity() -> None:
    book = three_bins()
    # Bin 0 takes 1_002 and bin -1 takes 1_000/1.001 rounded up (1_002) plus 2 fee: 2_006.
    assert book.capacity(swap_for_y=True) == 2_006
    assert book.swap(2_006, swap_for_y=True).amount_out == 2_000
    with pytest.raises(InsufficientLiquidity):
        book.swap(2_007, swap_for_y=True)


def test_bins_with_nothing_to_give_are_skipped() -> None:
    # The active bin holds only X: selling X starts in bin -1, at its price.
    book = DlmmBook(FLAT, 0, [Bin(-1, 0, 1_000), Bin(0, 1_000, 0)])
    result = book.swap(100, swap_for_y=True)
    # fee 1, 99 net, floor(99 / 1.001) = 98
    assert result.amount_out == 98
    assert result.price_impact_pct > 0


@st.composite
def books(draw: st.DrawFn) -> DlmmBook:
    bin_step = draw(st.sampled_from([1, 2, 4, 5, 10, 20, 25, 80, 100]))
    active = draw(st.integers(min_value=-3_000, max_value=3_000))
    side = draw(st.integers(min_value=0, max_value=12))
    amounts = st.integers(min_value=0, max_value=10**12)
    bins = [
        Bin(
            active + k,
            draw(amounts) if k >= 0 else 0,
            draw(amounts) if k <= 0 else 0,
        )
        for k in range(-side, side + 1)
    ]
    fees = DlmmFees(
        bin_step,
        draw(st.integers(min_value=0, max_value=20_000)),
        draw(st.integers(min_value=0, max_value=200_000)),
        draw(st.integers(min_value=0, max_value=500_000)),
    )
    return DlmmBook(fees, active, bins)


@given(books(), st.booleans(), st.data())
def test_output_is_monotone_in_input(book: DlmmBook, for_y: bool, data: st.DataObject) -> None:
    capacity = book.capacity(for_y)
    assume(capacity > 0)
    a, b = sorted(data.draw(st.integers(min_value=1, max_value=capacity)) for _ in range(2))
    assert book.swap(a, for_y).amount_out <= book.swap(b, for_y).amount_out


def swap_some(book: DlmmBook, for_y: bool, data: st.DataObject) -> tuple[int, SwapResult]:
    """Swap an amount the book can fill (a book with nothing on that side is discarded)."""
    capacity = book.capacity(for_y)
    assume(capacity > 0)
    amount = data.draw(st.integers(min_value=1, max_value=capacity))
    return amount, book.swap(amount, for_y)


@given(books(), st.booleans(), st.data())
def test_never_more_than_the_pool_holds_and_fees_never_negative(
    book: DlmmBook, for_y: bool, data: st.DataObject
) -> None:
    amount, result = swap_some(book, for_y, data)
    assert result.amount_out <= (book.total_y if for_y else book.total_x)
    assert 0 <= result.fee <= amount


@given(books(), st.booleans(), st.integers(min_value=1, max_value=10**13))
def test_past_the_last_bin_is_insufficient_liquidity(
    book: DlmmBook, for_y: bool, extra: int
) -> None:
    with pytest.raises(InsufficientLiquidity):
        book.swap(book.capacity(for_y) + extra, for_y)


@given(books(), st.booleans(), st.data())
def test_never_better_than_the_active_bin_price_after_fees(
    book: DlmmBook, for_y: bool, data: st.DataObject
) -> None:
    """Rounding against the trader: every unit of net input buys at most the best price."""
    amount, result = swap_some(book, for_y, data)
    price = bin_price(book.fees.bin_step, book.active_id) if abs(book.active_id) < 400 else None
    if price is not None:
        best = (amount - result.fee) * (price if for_y else 1 / price)
        assert result.amount_out <= best
    assert result.amount_out <= result.ideal_out


@given(
    bin_step=st.sampled_from([1, 5, 10, 25, 100]),
    active=st.integers(min_value=-300, max_value=300),
    reserve=st.integers(min_value=10**9, max_value=10**15),
    amount=st.integers(min_value=1, max_value=10**6),
    base_factor=st.integers(min_value=0, max_value=20_000),
)
def test_inside_one_bin_the_output_is_the_exact_floor(
    bin_step: int, active: int, reserve: int, amount: int, base_factor: int
) -> None:
    fees = DlmmFees(bin_step, base_factor, 0, 0)
    book = DlmmBook(fees, active, [Bin(active, reserve, reserve)])
    price = bin_price(bin_step, active)
    for for_y, rate in ((True, price), (False, 1 / price)):
        result = book.swap(amount, for_y)
        # The swap stays in the bin: fee = ceil(in * rate / 1e9) on the input.
        assert result.fee * FEE_PRECISION >= amount * fees.fee_rate(0)
        exact = (amount - result.fee) * rate
        assert result.amount_out <= exact
        # Q64.64 prices cost at most one unit more than the exact floor.
        assert exact - result.amount_out < 2
