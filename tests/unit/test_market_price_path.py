"""The seeded price path: deterministic, bounded, small moves per slot, large over minutes."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from dexec.market.market import Market
from dexec.market.price_path import Octave, max_move_ppm, noise_ppm, scaled, seeded_int
from dexec.market.tokens import resolve_token

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
USDT = resolve_token("USDT")
OCTAVES = (Octave(9_000, 30_000), Octave(750, 6_000), Octave(40, 400))
slots = st.integers(min_value=0, max_value=10**10)
seeds = st.integers(min_value=0, max_value=2**32)


def bps(a: Fraction, b: Fraction) -> Fraction:
    return abs(a - b) / b * 10_000


@given(seeds, slots)
def test_the_same_seed_gives_the_same_path(seed: int, slot: int) -> None:
    assert noise_ppm(seed, "k", OCTAVES, slot) == noise_ppm(seed, "k", OCTAVES, slot)


def test_seeds_and_keys_give_different_paths() -> None:
    samples = range(0, 100_000, 997)
    one = [noise_ppm(1, "a", OCTAVES, s) for s in samples]
    assert one != [noise_ppm(2, "a", OCTAVES, s) for s in samples]
    assert one != [noise_ppm(1, "b", OCTAVES, s) for s in samples]


@given(seeds, slots)
def test_the_path_stays_within_its_amplitudes(seed: int, slot: int) -> None:
    assert abs(noise_ppm(seed, "k", OCTAVES, slot)) <= sum(o.amplitude_ppm for o in OCTAVES)


@given(seeds, slots, st.integers(min_value=1, max_value=2_000))
def test_moves_are_bounded_by_the_octave_slopes(seed: int, slot: int, later: int) -> None:
    move = abs(noise_ppm(seed, "k", OCTAVES, slot + later) - noise_ppm(seed, "k", OCTAVES, slot))
    assert move <= max_move_ppm(OCTAVES, later)


def test_seeded_int_is_uniform_enough_and_in_range() -> None:
    draws = [seeded_int(3, "x", i, low=-5, high=5) for i in range(2_000)]
    assert set(draws) == set(range(-5, 6))


def test_volatility_scales_amplitudes() -> None:
    assert scaled(OCTAVES, 1, 2) == (Octave(9_000, 15_000), Octave(750, 3_000), Octave(40, 200))
    assert all(o.amplitude_ppm == 0 for o in scaled(OCTAVES, 0, 1))


def test_default_market_moves_well_under_50_bps_between_quote_and_execution() -> None:
    market = Market(7)
    sol_usdc = market.pools_between(SOL, USDC)
    for slot in range(4_400_000_000, 4_400_000_000 + 20_000, 37):
        # A quote, then execution 1-3 slots after the send, plus the quote's own latency.
        for pool in sol_usdc:
            now, then = market.pool_price(pool, slot), market.pool_price(pool, slot + 5)
            assert bps(then, now) < 10


def test_default_market_moves_by_percents_over_an_hour() -> None:
    market = Market(7)
    prices = [market.price_usd(SOL, slot) for slot in range(0, 4 * 9_000, 150)]
    assert (max(prices) - min(prices)) / min(prices) > Fraction(2, 100)
    # And never far from the reference: a quiet market, not a crash.
    assert all(abs(p - 150) / 150 < Fraction(8, 100) for p in prices)


def test_venues_drift_apart_by_a_few_percent_at_times() -> None:
    market = Market(7)
    pools = market.pools_between(SOL, USDC)
    assert {p.venue for p in pools} == {"raydium", "meteora"}
    widest = Fraction(0)
    for slot in range(0, 20_000, 50):
        prices = [market.pool_price(p, slot) for p in pools]
        widest = max(widest, (max(prices) - min(prices)) / min(prices))
    assert Fraction(1, 100) < widest < Fraction(6, 100)


def test_pegged_pools_stay_close_to_the_peg() -> None:
    market = Market(7)
    for slot in range(0, 20_000, 400):
        for pool in market.pools_between(USDT, USDC):
            assert abs(market.pool_price(pool, slot) - 1) < Fraction(10, 10_000)
