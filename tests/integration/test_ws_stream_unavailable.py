"""A backfill the stream cannot give (NATS away) refuses that one order for now, and nothing
else: a multiplexed socket stays open with its other orders, a single-order socket closes 1013
after saying so, and the order can be subscribed once NATS is back. (It used to be taken for
a slow client: close 1008 and every subscription on the socket lost.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from dexec_tools.servers import NatsServer
from tests.support.stack import start_nats_again, start_stack, stop_nats

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "2", "slippageBps": 300}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


async def subscribe(ws: websockets.ClientConnection, order_id: str) -> Any:
    await ws.send(orjson.dumps({"op": "subscribe", "orderIds": [order_id]}))
    return orjson.loads(await ws.recv())


async def test_a_backfill_nats_cannot_give_refuses_that_order_alone(
    nats_server: NatsServer, database_url: str
) -> None:
    # No backfill cache: every subscription reads the order's events from the stream.
    stack = await start_stack(nats_server.url, database_url, ws_backfill_cache_bytes=0)
    try:
        first, second = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(2)]
        for order_id in (first, second):
            await stack.watch(order_id)  # to its end

        async with asyncio.timeout(90):
            async with websockets.connect(f"{stack.ws_url}/ws?batch=true") as ws:
                before = await subscribe(ws, first)
                await stop_nats(nats_server, stack)
                refused = await subscribe(ws, second)
                async with websockets.connect(f"{stack.ws_url}/ws/orders/{second}") as alone:
                    alone_frame = orjson.loads(await alone.recv())
                    with pytest.raises(websockets.ConnectionClosed):
                        await alone.recv()
                await start_nats_again(nats_server, stack)
                after = await subscribe(ws, second)
    finally:
        await start_nats_again(nats_server, stack)
        await stack.stop()

    assert [e["orderId"] for e in before] == [first] * len(before)
    assert refused["error"]["code"] == "BUS_UNAVAILABLE"
    assert refused["error"]["orderId"] == second and refused["error"]["retryAfter"] == 1
    assert alone_frame["error"]["code"] == "BUS_UNAVAILABLE"
    assert alone.close_code == 1013
    # The same socket, still open, gets the order's whole history once NATS is back.
    assert [e["orderId"] for e in after] == [second] * len(after)
    assert [e["seq"] for e in after] == sorted(e["seq"] for e in after)
    assert after[0]["event"] == "pending" and after[-1]["status"] == "confirmed"
