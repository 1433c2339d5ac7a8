"""Quotes over NATS request/reply, the catalogue, and split and multi-hop orders end to end."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from dexec.market.tokens import resolve_token
from tests.support.markets import sol_usdc_only
from tests.support.stack import Stack

SOL = resolve_token("SOL")
USDC = resolve_token("USDC")
BONK = resolve_token("BONK")
JUP = resolve_token("JUP")
SOL_FOR_USDC = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"}
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]


async def get(stack: Stack, path: str, **params: Any) -> httpx.Response:
    return await stack.http.get(f"{stack.api_url}{path}", params=params)


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]["code"]


async def test_a_quote_has_jupiters_fields(stack: Stack) -> None:
    response = await get(stack, "/api/quote", **SOL_FOR_USDC, slippageBps=30)

    assert response.status_code == 200
    quote = response.json()
    assert (quote["tokenIn"], quote["tokenOut"]) == ("SOL", "USDC")
    assert (quote["inputMint"], quote["outputMint"]) == (SOL.mint, USDC.mint)
    assert quote["inAmount"] == "1500000000"
    assert quote["swapMode"] == "ExactIn" and quote["slippageBps"] == 30
    out = int(quote["outAmount"])
    assert 150 * 10**6 < out < 300 * 10**6  # 1.5 SOL at roughly 150 USDC
    assert int(quote["otherAmountThreshold"]) == out * 9_970 // 10_000
    assert Decimal(quote["priceImpactPct"]) >= 0
    assert quote["contextSlot"] > 0
    assert int(quote["networkFeeLamports"]) > 5_000
    for leg in quote["routePlan"]:
        assert {"venue", "pool", "inAmount", "outAmount", "feeAmount", "percent"} <= set(leg)
    assert sum(int(leg["outAmount"]) for leg in quote["routePlan"]) == out
    assert [c["chosen"] for c in quote["candidates"]].count(True) == 1
    assert {q["venue"] for q in quote["quotes"]} == {"raydium", "meteora"}
    assert quote["reason"]


async def test_the_default_slippage_is_the_orders_default(stack: Stack) -> None:
    quote = (await get(stack, "/api/quote", **SOL_FOR_USDC)).json()
    assert quote["slippageBps"] == 50


async def test_any_router_replica_answers_quotes(start) -> None:
    stack: Stack = await start(replicas=2)

    for _ in range(24):
        assert (await get(stack, "/api/quote", **SOL_FOR_USDC)).status_code == 200

    answered = [router.quotes_answered for router in stack.routers]
    assert sum(answered) == 24
    assert all(answered), answered  # the queue group spreads requests over both replicas


async def test_quotes_waiting_on_the_venues_are_answered_concurrently(start) -> None:
    # Each quote waits a second on the venues; one at a time, the eighth would wait past the
    # API's 5 s reply timeout and come back 503.
    stack: Stack = await start(
        latency_mode="realistic", quote_latency_ms_min=1_000, quote_latency_ms_max=1_000
    )

    responses = await asyncio.gather(*(get(stack, "/api/quote", **SOL_FOR_USDC) for _ in range(8)))

    assert [r.status_code for r in responses] == [200] * 8


async def test_tokens_lists_what_trades_where(stack: Stack) -> None:
    response = await get(stack, "/api/tokens")

    assert response.status_code == 200
    body = response.json()
    tokens = {t["symbol"]: t for t in body["tokens"]}
    assert {"SOL", "USDC", "USDT"} <= set(tokens)
    assert len(tokens) >= 6
    assert tokens["SOL"]["mint"] == SOL.mint and tokens["SOL"]["decimals"] == 9
    assert tokens["USDC"]["decimals"] == 6
    assert set(tokens["SOL"]["venues"]) == {"raydium", "meteora"}
    assert 100 < Decimal(tokens["SOL"]["priceUsd"]) < 200
    assert body["market"] == "default"


async def test_venues_lists_the_pools(stack: Stack) -> None:
    response = await get(stack, "/api/venues")

    assert response.status_code == 200
    venues = {v["name"]: v for v in response.json()["venues"]}
    assert set(venues) == {"raydium", "meteora"}
    raydium_kinds = {p["kind"] for p in venues["raydium"]["pools"]}
    assert raydium_kinds == {"raydium-amm-v4", "raydium-cpmm"}
    dlmm = venues["meteora"]["pools"][0]
    assert dlmm["kind"] == "meteora-dlmm" and dlmm["binStep"] >= 1
    assert all(Decimal(p["feeBps"]) > 0 for v in venues.values() for p in v["pools"])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "VALIDATION_ERROR"),
        ({"tokenIn": "SOL", "amount": "1"}, "VALIDATION_ERROR"),
        ({**SOL_FOR_USDC, "tokenIn": "DOGE"}, "UNKNOWN_TOKEN"),
        ({**SOL_FOR_USDC, "tokenOut": "wsol"}, "SAME_TOKEN"),
        ({**SOL_FOR_USDC, "amount": "abc"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "amount": "0"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "amount": "-1"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "amount": "0.0000000001"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "amount": "1e30"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "amount": "1_0"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "amount": "\uff11"}, "INVALID_AMOUNT"),
        ({**SOL_FOR_USDC, "slippageBps": "10001"}, "VALIDATION_ERROR"),
        ({**SOL_FOR_USDC, "slippageBps": "abc"}, "VALIDATION_ERROR"),
        ({**SOL_FOR_USDC, "slippageBps": "5_0"}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_quote_parameters_are_a_json_422(
    stack: Stack, params: dict[str, str], code: str
) -> None:
    response = await get(stack, "/api/quote", **params)
    assert response.status_code == 422
    assert error_code(response) == code


async def test_a_pair_no_route_connects_is_a_422_no_route(start, tmp_path: Path) -> None:
    stack: Stack = await start(market_file=str(sol_usdc_only(tmp_path)))

    response = await get(stack, "/api/quote", tokenIn="BONK", tokenOut="JUP", amount="1000")

    assert response.status_code == 422
    assert error_code(response) == "NO_ROUTE"
    assert set(response.json()["error"]["details"]["venues"]) == {"raydium", "meteora"}


async def test_every_venue_down_is_a_503_to_retry(start) -> None:
    stack: Stack = await start(venues_down="raydium,meteora")

    response = await get(stack, "/api/quote", **SOL_FOR_USDC)

    assert response.status_code == 503
    assert error_code(response) == "QUOTES_UNAVAILABLE"
    assert response.headers["retry-after"] == "1"


async def test_no_router_is_a_503(start) -> None:
    stack: Stack = await start(without=frozenset({"router"}))

    response = await get(stack, "/api/quote", **SOL_FOR_USDC)

    assert response.status_code == 503
    assert error_code(response) == "ROUTER_UNAVAILABLE"
    assert (await get(stack, "/api/tokens")).status_code == 503


async def test_a_multi_hop_order_is_confirmed_end_to_end(stack: Stack) -> None:
    # BONK/JUP has no pool: the route goes through SOL or USDC. Memecoin bins are coarse
    # (20-25 bps), so this order allows a little more than the default slippage.
    order = {"tokenIn": "BONK", "tokenOut": "JUP", "amount": "100000000", "slippageBps": 100}
    order_id = (await stack.submit(order)).json()["orderId"]

    messages = await stack.watch(order_id)

    assert [m["event"] for m in messages] == LIFECYCLE
    routed = messages[2]["data"]
    legs = routed["routePlan"]
    hub = legs[0]["outputMint"]
    assert hub in {SOL.mint, USDC.mint}
    # The first hop's legs, then the second's.
    mints = [leg["inputMint"] for leg in legs]
    first = mints.count(BONK.mint)
    assert first >= 1 and mints == [BONK.mint] * first + [hub] * (len(mints) - first)
    assert legs[-1]["outputMint"] == JUP.mint
    assert "no BONK/JUP pool" in routed["reason"]
    confirmed = messages[-1]["data"]
    assert int(confirmed["outAmount"]) >= int(routed["otherAmountThreshold"])


async def test_a_large_order_is_split_across_venues_and_confirmed(stack: Stack) -> None:
    order = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "30000", "slippageBps": 100}
    order_id = (await stack.submit(order)).json()["orderId"]

    messages = await stack.watch(order_id)

    assert [m["event"] for m in messages] == LIFECYCLE
    routed = messages[2]["data"]
    assert len(routed["routePlan"]) > 1
    assert sum(leg["percent"] for leg in routed["routePlan"]) == 100
    assert routed["reason"].startswith("split ")
    assert int(messages[-1]["data"]["outAmount"]) >= int(routed["otherAmountThreshold"])


async def test_with_one_venue_down_orders_route_on_the_other(start) -> None:
    stack: Stack = await start(venues_down="meteora")
    order_id = (await stack.submit({**SOL_FOR_USDC, "amount": "2"})).json()["orderId"]

    messages = await stack.watch(order_id)

    assert [m["event"] for m in messages] == LIFECYCLE
    routed = messages[2]["data"]
    assert {leg["venue"] for leg in routed["routePlan"]} == {"raydium"}
    assert routed["failedVenues"]["meteora"].startswith("error: 503")


async def test_with_every_venue_down_routing_is_retried_then_fails(start) -> None:
    stack: Stack = await start(venues_down="raydium,meteora", retry_backoff_base_seconds=0.1)
    order_id = (await stack.submit(SOL_FOR_USDC)).json()["orderId"]

    messages = await stack.watch(order_id)

    retries = [m for m in messages if m["event"] == "retrying"]
    assert [r["data"]["code"] for r in retries] == ["QUOTES_UNAVAILABLE"] * 2
    assert all(r["data"]["stage"] == "router" for r in retries)
    final = messages[-1]
    assert final["event"] == "failed"
    assert final["data"]["code"] == "QUOTES_UNAVAILABLE"
    assert final["data"]["attempts"] == 3
