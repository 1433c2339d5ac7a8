"""The default market: tokens, pools on both venues, pool states along the price path."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from dexec.market.dlmm import bin_price
from dexec.market.market import Market
from dexec.market.pool_model import ConstantProductCurve, ConstantProductState, DlmmState
from dexec.market.tokens import resolve_token
from dexec.market.venues import METEORA, RAYDIUM, PoolKind

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
SLOT = 4_400_000_123


def test_the_default_market_trades_sol_stablecoins_and_more() -> None:
    symbols = {t.symbol for t in Market(7).tokens}
    assert {"SOL", "USDC", "USDT"} <= symbols
    assert len(symbols - {"SOL", "USDC", "USDT"}) >= 3


def test_every_pair_has_pools_on_both_venues_and_all_pool_kinds_are_used() -> None:
    market = Market(7)
    pairs: dict[frozenset, set[str]] = {}
    for pool in market.pools():
        pairs.setdefault(frozenset((pool.base, pool.quote)), set()).add(pool.venue)
    assert all(venues == {RAYDIUM, METEORA} for venues in pairs.values())
    assert {p.kind for p in market.pools()} == set(PoolKind)
    sol_usdc = market.pools_between(SOL, USDC)
    assert sum(p.venue == RAYDIUM for p in sol_usdc) >= 2
    assert sum(p.venue == METEORA for p in sol_usdc) >= 2


def test_pool_addresses_are_base58_and_unique() -> None:
    addresses = [p.address for p in Market(7).pools()]
    assert len(set(addresses)) == len(addresses)
    assert all(32 <= len(a) <= 44 and "0" not in a and "l" not in a for a in addresses)


def test_the_same_seed_gives_the_same_market() -> None:
    one, two = Market(42), Market(42)
    for pool in one.pools():
        for slot in (0, 1_000, SLOT):
            assert one.pool_price(pool, slot) == two.pool_price(pool, slot)
            assert one.state(pool, slot).holdings() == two.state(pool, slot).holdings()
            amount = 10**pool.base.decimals
            assert one.swap(pool.address, pool.base, amount, slot) == two.swap(
                pool.address, pool.base, amount, slot
            )


def test_different_seeds_give_different_prices() -> None:
    pool = Market(1).pools()[0]
    assert Market(1).pool_price(pool, SLOT) != Market(2).pool_price(pool, SLOT)


def test_a_constant_product_pool_slides_along_its_curve() -> None:
    market = Market(7)
    pool = next(p for p in market.pools() if p.kind is PoolKind.RAYDIUM_AMM_V4)
    assert isinstance(pool.curve, ConstantProductCurve)
    for slot in (0, 5_000, SLOT):
        state = market.state(pool, slot)
        assert isinstance(state, ConstantProductState)
        price = Fraction(state.reserve_quote, state.reserve_base)
        assert abs(price / market.pool_price(pool, slot) - 1) < Fraction(1, 10**6)
        k = state.reserve_base * state.reserve_quote
        assert abs(Fraction(k, pool.curve.invariant) - 1) < Fraction(1, 10**6)


def test_a_dlmm_pool_sits_in_the_bin_that_holds_its_price() -> None:
    market = Market(7)
    pool = next(
        p for p in market.pools() if p.kind is PoolKind.METEORA_DLMM and p.pair == "SOL/USDC"
    )
    state = market.state(pool, SLOT)
    assert isinstance(state, DlmmState)
    book, step = state.book, pool.curve.fees.bin_step  # type: ignore[union-attr]
    price = market.pool_price(pool, SLOT)
    assert bin_price(step, book.active_id) <= price < bin_price(step, book.active_id + 1)
    for b in book.bins:
        if b.id < book.active_id:
            assert b.amount_x == 0 and b.amount_y > 0
        if b.id > book.active_id:
            assert b.amount_y == 0 and b.amount_x > 0
    # Its value is the file's liquidity, in USDC at ~1 USD.
    value = book.total_y + book.total_x * price
    assert abs(value / (Fraction(pool.liquidity_usd) * 10**6) - 1) < Fraction(2, 100)


@pytest.mark.parametrize("pool_index", range(4))
def test_selling_one_sol_gives_about_the_market_price(pool_index: int) -> None:
    market = Market(3)
    pool = market.pools_between(SOL, USDC)[pool_index]
    result = market.swap(pool.address, SOL, 10**9, SLOT)
    usd = market.price_usd(SOL, SLOT)
    assert abs(Fraction(result.amount_out, 10**6) / usd - 1) < Fraction(4, 100)
    bought = market.swap(pool.address, USDC, result.amount_out, SLOT)
    # A round trip loses fees and drift, never gains.
    assert bought.amount_out < 10**9


def test_price_impact_grows_with_size_in_every_pool() -> None:
    market = Market(7)
    for pool in market.pools_between(SOL, USDC):
        impacts: list[Decimal] = []
        for sol in (1, 10, 100, 1_000, 5_000):
            impacts.append(market.swap(pool.address, SOL, sol * 10**9, SLOT).price_impact_pct)
        assert impacts == sorted(impacts), pool.name
        assert impacts[-1] > impacts[0]


def test_route_pools_are_the_pair_or_the_legs_through_the_hubs() -> None:
    market = Market(7)
    assert market.route_pools(SOL, USDC) == market.pools_between(SOL, USDC)
    bonk, jup = resolve_token("BONK"), resolve_token("JUP")
    legs = market.route_pools(bonk, jup)
    assert market.pools_between(bonk, jup) == []
    assert {frozenset((p.base.symbol, p.quote.symbol)) for p in legs} == {
        frozenset(("BONK", "SOL")),
        frozenset(("JUP", "SOL")),
        frozenset(("BONK", "USDC")),
        frozenset(("JUP", "USDC")),
    }
