"""Asking the venues: latency model, one venue failing or timing out, both failing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dexec.market.chain import SlotClock
from dexec.market.market import Market
from dexec.market.tokens import resolve_token
from dexec.market.venues import METEORA, RAYDIUM
from dexec.settings import LatencyMode, MarketSettings
from dexec_router.planner import RoutePlanner, RoutingFailed
from dexec_router.quoting import venue_latency_seconds
from dexec_router.settings import RouterSettings
from tests.support.markets import STILL_SOL_USDC, sol_usdc_only

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
BONK = resolve_token("BONK")
JUP = resolve_token("JUP")


def planner(**overrides: Any) -> RoutePlanner:
    settings = RouterSettings(**{"latency_mode": "zero", **overrides})
    return RoutePlanner(Market.from_settings(settings), settings, SlotClock(settings.slot_ms))


def test_quote_latency_is_within_the_configured_range_and_seeded() -> None:
    settings = MarketSettings(quote_latency_ms_min=100, quote_latency_ms_max=300)
    delays = {venue_latency_seconds(settings, RAYDIUM, f"order-{i}") for i in range(200)}
    assert min(delays) >= 0.1 and max(delays) <= 0.3 and len(delays) > 50
    assert venue_latency_seconds(settings, RAYDIUM, "x") == venue_latency_seconds(
        settings, RAYDIUM, "x"
    )
    zero = MarketSettings(latency_mode=LatencyMode.ZERO)
    assert venue_latency_seconds(zero, RAYDIUM, "x") == 0


async def test_both_venues_answer() -> None:
    route = await planner().plan(SOL, USDC, 10**9, 50, key="k")
    assert route.failed_venues == {}
    assert {q.venue for q in route.quotes} == {RAYDIUM, METEORA}


async def test_one_venue_failing_still_routes_on_the_other() -> None:
    route = await planner(venues_down=METEORA).plan(SOL, USDC, 10**9, 50, key="k")
    assert {leg.venue for leg in route.route_plan} == {RAYDIUM}
    assert route.failed_venues[METEORA].startswith("error: 503")


async def test_one_venue_timing_out_still_routes_on_the_other() -> None:
    p = planner(quote_timeout_rate="0.5", quote_timeout_seconds=0.05)
    for i in range(50):
        try:
            route = await p.plan(SOL, USDC, 10**9, 50, key=f"order-{i}")
        except RoutingFailed:
            continue
        if len(route.failed_venues) == 1:
            ((venue, reason),) = route.failed_venues.items()
            assert reason == "timeout"
            assert venue not in {leg.venue for leg in route.route_plan}
            return
    pytest.fail("no quote had exactly one venue time out")


async def test_every_venue_timing_out_is_a_retryable_routing_failure() -> None:
    p = planner(quote_timeout_rate=1, quote_timeout_seconds=0.05)
    with pytest.raises(RoutingFailed) as info:
        await p.plan(SOL, USDC, 10**9, 50, key="k")
    assert info.value.details["venues"] == {RAYDIUM: "timeout", METEORA: "timeout"}
    assert info.value.retryable and info.value.code == "QUOTES_UNAVAILABLE"


async def test_a_seeded_share_of_quotes_fails() -> None:
    p = planner(quote_failure_rate="0.5")
    failures = 0
    for i in range(40):
        try:
            route = await p.plan(SOL, USDC, 10**9, 50, key=f"order-{i}")
        except RoutingFailed:
            failures += 2
            continue
        failures += len(route.failed_venues)
    assert 20 <= failures <= 60


async def test_both_venues_failing_is_a_retryable_routing_failure() -> None:
    with pytest.raises(RoutingFailed) as info:
        await planner(venues_down="raydium, meteora").plan(SOL, USDC, 10**9, 50, key="k")
    assert info.value.code == "QUOTES_UNAVAILABLE"
    assert info.value.retryable
    assert set(info.value.details["venues"]) == {RAYDIUM, METEORA}


async def test_a_pair_no_route_connects_is_a_permanent_no_route(tmp_path: Path) -> None:
    market_file = sol_usdc_only(tmp_path)
    with pytest.raises(RoutingFailed) as info:
        await planner(market_file=str(market_file)).plan(BONK, JUP, 10**9, 50, key="k")
    assert info.value.code == "NO_ROUTE"
    assert not info.value.retryable
    assert info.value.details["venues"] == {
        RAYDIUM: "no pool for this pair",
        METEORA: "no pool for this pair",
    }


async def test_an_order_beyond_all_liquidity_is_no_route(tmp_path: Path) -> None:
    market_file = tmp_path / "dlmm-only.toml"
    market_file.write_text(
        STILL_SOL_USDC
        + """[[pools]]
kind = "meteora-dlmm"
pair = "SOL/USDC"
bin_step = 10
base_factor = 10000
bins_each_side = 5
liquidity_usd = 10_000
"""
    )
    p = planner(market_file=str(market_file))
    assert (await p.plan(SOL, USDC, 10**9, 50, key="k")).out_amount > 0
    with pytest.raises(RoutingFailed) as info:
        await p.plan(SOL, USDC, 1_000 * 10**9, 50, key="k")
    assert info.value.code == "NO_ROUTE"
