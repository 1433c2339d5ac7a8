"""A multiplexed socket may subscribe only so many order ids a second (each is a backfill)."""

from __future__ import annotations

import asyncio

import orjson
import websockets

from tests.support.stack import Stack

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "3", "slippageBps": 300}
ORDERS = 10
BURST = 50


async def test_subscriptions_beyond_the_sockets_budget_are_refused_with_rate_limited(
    start,
) -> None:
    # A rate that refills nothing within the test: the budget is the burst alone.
    stack: Stack = await start(
        ws_subscribe_rate=0.001, ws_subscribe_burst=BURST, ws_backfill_cache_ttl_seconds=600
    )
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(ORDERS)]
    await asyncio.gather(*(stack.watch(order_id) for order_id in ids))

    rounds = BURST // ORDERS
    async with websockets.connect(f"{stack.ws_url}/ws?batch=true") as ws:
        async with asyncio.timeout(60):
            for _ in range(rounds):  # every round is 10 backfills, all within the budget
                await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
                frame = orjson.loads(await ws.recv())
                assert {e["orderId"] for e in frame} == set(ids)
                await ws.send(orjson.dumps({"op": "unsubscribe", "orderIds": ids}))
            await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
            error = orjson.loads(await ws.recv())["error"]
            # The socket stays open: a later command is answered too.
            await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ["marker"]}))
            later = orjson.loads(await ws.recv())["error"]

    assert error["code"] == "RATE_LIMITED"
    assert error["orderIds"] == ids
    assert error["retryAfter"] >= 1
    assert (later["code"], later["orderIds"]) == ("RATE_LIMITED", ["marker"])
