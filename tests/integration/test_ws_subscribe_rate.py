"""A client may subscribe only so many order ids a second (each id is a backfill): per socket
for an anonymous client, per tenant with API keys on, its single-order sockets included."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import websockets

from dexec.auth import hash_api_key
from tests.support.stack import Stack

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "3", "slippageBps": 300}
ORDERS = 10
BURST = 50
ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


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


async def test_a_tenants_sockets_share_its_budget(start) -> None:
    """A second socket buys a tenant no more subscriptions; another tenant has its own."""
    stack, alices, bob = await two_tenants(start)
    bobs = [bob]

    async def subscribe(key: str, ids: list[str]) -> object:
        async with websockets.connect(f"{stack.ws_url}/ws?batch=true&apiKey={key}") as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "orderIds": ids}))
            return orjson.loads(await ws.recv())

    async with asyncio.timeout(60):
        first = await subscribe(ALICE, alices)  # the whole burst
        second = await subscribe(ALICE, alices[:1])  # another socket of hers: nothing left
        other = await subscribe(BOB, bobs)

    assert isinstance(first, list) and {e["orderId"] for e in first} == set(alices)
    assert isinstance(second, dict) and second["error"]["code"] == "RATE_LIMITED"
    assert second["error"]["orderIds"] == alices[:1]
    assert isinstance(other, list) and {e["orderId"] for e in other} == set(bobs)


async def test_a_tenants_single_order_sockets_draw_on_its_budget(start) -> None:
    """A socket per order is no way around the budget: beyond it, RATE_LIMITED and close 4429."""
    stack, alices, bob = await two_tenants(start)

    async def first_frame(key: str, order_id: str) -> tuple[object, int | None]:
        url = f"{stack.ws_url}/ws/orders/{order_id}?batch=true&apiKey={key}"
        async with websockets.connect(url) as ws:
            frame = orjson.loads(await ws.recv())
            if isinstance(frame, dict):  # an error: the server closes next
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.recv()
            return frame, ws.close_code

    async with asyncio.timeout(60):
        served = [await first_frame(ALICE, order_id) for order_id in alices]  # the whole burst
        refused, refused_code = await first_frame(ALICE, alices[0])
        other, _ = await first_frame(BOB, bob)

    assert all(
        isinstance(frame, list) and frame[0]["orderId"] == i
        for (frame, _), i in zip(served, alices, strict=True)
    )
    assert isinstance(refused, dict) and refused["error"]["code"] == "RATE_LIMITED"
    assert refused["error"]["orderId"] == alices[0] and refused["error"]["retryAfter"] >= 1
    assert refused_code == 4429
    assert isinstance(other, list) and other[0]["orderId"] == bob


async def two_tenants(start) -> tuple[Stack, list[str], str]:
    """A stack with API keys on whose tenants may each subscribe ORDERS ids in all; Alice's
    ORDERS orders and Bob's one."""
    stack: Stack = await start(
        ws_subscribe_rate=0.001,
        ws_subscribe_burst=ORDERS,
        ws_backfill_cache_ttl_seconds=600,
        api_keys_enabled=True,
        api_keys={"alice": hash_api_key(ALICE), "bob": hash_api_key(BOB)},
    )

    async def submit(key: str) -> str:
        return (await stack.submit(ORDER, **{"X-API-Key": key})).json()["orderId"]

    return stack, [await submit(ALICE) for _ in range(ORDERS)], await submit(BOB)
