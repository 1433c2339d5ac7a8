"""Meteora DLMM: liquidity in discrete price bins, a base fee plus a variable fee.

Bin `id` trades at `price(id) = (1 + binStep/10_000)^id` units of Y per unit of X (base units),
as a constant-sum pool: inside one bin the price does not move. A swap fills the active bin,
then walks to the next bin (down when selling X for Y, up when buying X), until its input is
used up; when the bins run out, it fails with "insufficient liquidity".

The fee follows the lb_clmm program: `base = baseFactor·binStep·10` and
`variable = ceil(variableFeeControl·(va·binStep)² / 1e11)` in units of 1e-9, capped at 10%,
where the volatility accumulator `va` grows by 10,000 for every bin the swap has crossed. In a
bin the swap drains, the fee is `ceil(in·rate / (1e9 - rate))` on the input the bin needs; in
the bin where it stops, `ceil(in·rate / 1e9)` on what is left.

Prices are Q64.64 fixed point like the program's, but taken as the exact floor or ceiling of
the irrational-looking power (never a float), whichever is worse for the trader in the swap's
direction: outputs and bin capacities are then always rounded against the trader.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from dexec.market.pools import InsufficientLiquidity, SwapResult, ceil_div

BASIS_POINT_MAX = 10_000
SCALE_OFFSET = 64
ONE_Q64 = 1 << SCALE_OFFSET
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000
# Extra fraction bits for the interval power below; it only falls back to exact big integers
# when the bounds straddle an integer, which at this precision means "exactly on it".
_GUARD_BITS = 128


@dataclass(frozen=True)
class DlmmFees:
    bin_step: int
    base_factor: int
    variable_fee_control: int
    max_volatility_accumulator: int

    @property
    def base_fee_rate(self) -> int:
        return self.base_factor * self.bin_step * 10

    def variable_fee_rate(self, volatility_accumulator: int) -> int:
        square = (volatility_accumulator * self.bin_step) ** 2
        return ceil_div(self.variable_fee_control * square, 100_000_000_000)

    def fee_rate(self, bins_crossed: int) -> int:
        """Total fee rate (1e-9 units) in the bin reached after crossing `bins_crossed` bins."""
        va = min(bins_crossed * BASIS_POINT_MAX, self.max_volatility_accumulator)
        return min(self.base_fee_rate + self.variable_fee_rate(va), MAX_FEE_RATE)


def fee_from_amount(amount_with_fee: int, rate: int) -> int:
    """lb_clmm `compute_fee_from_amount`: the fee inside an amount that includes it."""
    return ceil_div(amount_with_fee * rate, FEE_PRECISION)


def fee_for_amount(amount: int, rate: int) -> int:
    """lb_clmm `compute_fee`: the fee to add to `amount` so that `amount` is left after it."""
    return ceil_div(amount * rate, FEE_PRECISION - rate)


def _power_bounds(num: int, den: int, exponent: int, bits: int) -> tuple[int, int]:
    """Integers lo ≤ (num/den)^exponent · 2^bits ≤ hi, by square-and-multiply with bounds."""
    one = 1 << bits
    lo = hi = one
    base_lo, base_hi = (num << bits) // den, ceil_div(num << bits, den)
    while exponent:
        if exponent & 1:
            lo, hi = (lo * base_lo) >> bits, ceil_div(hi * base_hi, one)
        exponent >>= 1
        if exponent:
            base_lo, base_hi = (base_lo * base_lo) >> bits, ceil_div(base_hi * base_hi, one)
    return lo, hi


@lru_cache(maxsize=1 << 16)
def bin_price_q64(bin_step: int, bin_id: int) -> tuple[int, int]:
    """The exact floor and ceiling of `price(bin_id) · 2^64`."""
    num, den = BASIS_POINT_MAX + bin_step, BASIS_POINT_MAX
    if bin_id < 0:
        num, den = den, num
    exponent = abs(bin_id)
    lo, hi = _power_bounds(num, den, exponent, SCALE_OFFSET + _GUARD_BITS)
    scale = 1 << _GUARD_BITS
    floor, ceiling = lo // scale, ceil_div(hi, scale)
    if hi // scale == floor and ceil_div(lo, scale) == ceiling:
        return floor, ceiling
    exact_num, exact_den = num**exponent << SCALE_OFFSET, den**exponent
    return exact_num // exact_den, ceil_div(exact_num, exact_den)


def bin_price(bin_step: int, bin_id: int) -> Fraction:
    """The exact price of a bin (big integers for far bins: for tests and checks)."""
    ratio = Fraction(BASIS_POINT_MAX + bin_step, BASIS_POINT_MAX)
    return ratio**bin_id


@dataclass(frozen=True)
class Bin:
    id: int
    amount_x: int
    amount_y: int


@dataclass(frozen=True)
class _Step:
    """One bin as a swap in one direction meets it."""

    price_q64: int
    fee_rate: int
    # The input, fee included, that drains the bin; the output and fee when it does.
    max_in: int
    max_out: int
    max_fee: int


class _Walk:
    """The bins a swap in one direction visits, in order, with running totals.

    A swap that drains bins 0..i-1 and stops in bin i is a prefix sum plus one partial bin,
    so quoting any amount is a binary search: the split search quotes the same book many times.
    """

    def __init__(self, steps: list[_Step], swap_for_y: bool) -> None:
        self.steps = steps
        self.swap_for_y = swap_for_y
        self.ends: list[int] = []
        self.outs: list[int] = []
        self.fees: list[int] = []
        total_in = total_out = total_fee = 0
        for step in steps:
            total_in += step.max_in
            total_out += step.max_out
            total_fee += step.max_fee
            self.ends.append(total_in)
            self.outs.append(total_out)
            self.fees.append(total_fee)

    def out_for(self, net_in: int, price_q64: int) -> int:
        if self.swap_for_y:
            return (net_in * price_q64) >> SCALE_OFFSET
        return (net_in << SCALE_OFFSET) // price_q64

    def swap(self, amount_in: int) -> tuple[int, int]:
        """(output, fee) for `amount_in`; raises when the bins cannot take all of it."""
        index = bisect_left(self.ends, amount_in)
        if index == len(self.steps):
            raise InsufficientLiquidity(
                f"the pool's bins take at most {self.ends[-1] if self.ends else 0} of this input"
            )
        drained_in = self.ends[index - 1] if index else 0
        drained_out = self.outs[index - 1] if index else 0
        drained_fee = self.fees[index - 1] if index else 0
        step = self.steps[index]
        rest = amount_in - drained_in
        fee = fee_from_amount(rest, step.fee_rate)
        out = min(self.out_for(rest - fee, step.price_q64), step.max_out)
        return drained_out + out, drained_fee + fee


class DlmmBook:
    """A DLMM pool's bins at one moment: `active_id` and the bins around it."""

    def __init__(self, fees: DlmmFees, active_id: int, bins: list[Bin]) -> None:
        self.fees = fees
        self.active_id = active_id
        self.bins = sorted(bins, key=lambda b: b.id)
        self._walks: dict[bool, _Walk] = {}

    @property
    def total_x(self) -> int:
        return sum(b.amount_x for b in self.bins)

    @property
    def total_y(self) -> int:
        return sum(b.amount_y for b in self.bins)

    def _walk(self, swap_for_y: bool) -> _Walk:
        walk = self._walks.get(swap_for_y)
        if walk is None:
            walk = self._walks[swap_for_y] = self._build_walk(swap_for_y)
        return walk

    def _build_walk(self, swap_for_y: bool) -> _Walk:
        step_size = self.fees.bin_step
        # Selling X walks down from the active bin, buying X walks up.
        ordered = (
            [b for b in reversed(self.bins) if b.id <= self.active_id]
            if swap_for_y
            else [b for b in self.bins if b.id >= self.active_id]
        )
        steps = []
        for b in ordered:
            rate = self.fees.fee_rate(abs(b.id - self.active_id))
            price_floor, price_ceil = bin_price_q64(step_size, b.id)
            if swap_for_y:
                if b.amount_y == 0:
                    continue  # the program skips bins with nothing to give
                # Y out for X in: the lower price gives less Y and asks more X for the bin.
                price, max_out = price_floor, b.amount_y
                net_max_in = ceil_div(b.amount_y << SCALE_OFFSET, price)
            else:
                if b.amount_x == 0:
                    continue
                price, max_out = price_ceil, b.amount_x
                net_max_in = ceil_div(b.amount_x * price, ONE_Q64)
            max_fee = fee_for_amount(net_max_in, rate)
            steps.append(_Step(price, rate, net_max_in + max_fee, max_out, max_fee))
        return _Walk(steps, swap_for_y)

    def swap(self, amount_in: int, swap_for_y: bool) -> SwapResult:
        """Swap X for Y (`swap_for_y`) or Y for X, walking the bins from the active one."""
        if amount_in <= 0:
            raise ValueError("amount_in must be positive")
        out, fee = self._walk(swap_for_y).swap(amount_in)
        price_floor, price_ceil = bin_price_q64(self.fees.bin_step, self.active_id)
        if swap_for_y:
            return SwapResult(amount_in, out, fee, amount_in * price_floor, ONE_Q64)
        return SwapResult(amount_in, out, fee, amount_in * ONE_Q64, price_ceil)

    def capacity(self, swap_for_y: bool) -> int:
        """The largest input the bins can take in this direction."""
        ends = self._walk(swap_for_y).ends
        return ends[-1] if ends else 0
