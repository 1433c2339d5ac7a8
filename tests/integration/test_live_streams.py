"""WebSocket streams: every event once, in order, for every client, whenever it connects."""

from __future__ import annotations

import asyncio

import orjson
import websockets

from tests.support.stack import Stack

# Wide slippage: these tests are about streaming, not about the market moving.
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "3", "slippageBps": 300}
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]


async def test_many_clients_watching_one_order_each_get_every_event_once(start) -> None:
    # Realistic latencies keep the order in flight while the clients connect.
    stack: Stack = await start(latency_mode="realistic", slot_ms=100)
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    streams = await asyncio.gather(*(stack.watch(order_id) for _ in range(10)))

    for messages in streams:
        assert [m["event"] for m in messages] == LIFECYCLE
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(set(seqs))
    assert len({tuple(m["seq"] for m in s) for s in streams}) == 1


async def test_a_client_joining_after_the_end_gets_the_whole_history(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    first = await stack.watch(order_id)

    late = await stack.watch(order_id)

    assert [m["event"] for m in late] == LIFECYCLE
    assert late == first


async def test_query_parameter_endpoint_streams_the_same_events(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    messages = []
    async with websockets.connect(f"{stack.ws_url}/ws?orderId={order_id}") as ws:
        async for raw in ws:
            messages.append(orjson.loads(raw))
        assert ws.close_code == 1000
    assert [m["event"] for m in messages] == LIFECYCLE
    assert {"orderId", "status", "event", "seq", "at"} <= set(messages[0])


async def test_unknown_order_gets_a_json_error_and_close_code_4404(stack: Stack) -> None:
    async with websockets.connect(f"{stack.ws_url}/ws/orders/no-such-order") as ws:
        error = orjson.loads(await ws.recv())
        await ws.wait_closed()
    assert error["error"]["code"] == "ORDER_NOT_FOUND"
    assert ws.close_code == 4404


async def test_a_reconnecting_client_resumes_after_the_last_seq_it_saw(stack: Stack) -> None:
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    everything = await stack.watch(order_id)
    seen = everything[:3]

    resumed = []
    url = f"{stack.ws_url}/ws/orders/{order_id}?afterSeq={seen[-1]['seq']}"
    async with websockets.connect(url) as ws:
        async for raw in ws:
            resumed.append(orjson.loads(raw))

    assert seen + resumed == everything
    async with websockets.connect(f"{url.split('?')[0]}?afterSeq={everything[-1]['seq']}") as ws:
        assert [raw async for raw in ws] == []
        assert ws.close_code == 1000
