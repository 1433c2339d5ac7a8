"""A WebSocket client that stops reading is cut off: its connection ends, it is not held open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client import REGISTRY

from tests.support.raw_ws import RawClient
from tests.support.stack import Stack
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "3", "slippageBps": 300}
ORDERS = 10
# Each round resends every order's backfill (~65 KB): 300 rounds are ~20 MB, far more than the
# server's socket buffer (4 MiB at most by default) and uvicorn's hold, so its sends block.
ROUNDS = 300
# How long the notifier may take to let go of the connection: its send timeout, uvicorn's close
# handshake timeout (10 s) and the flush grace, with room for a loaded machine.
CUT_OFF_WITHIN = 60.0


def connections() -> float:
    return REGISTRY.get_sample_value("dexec_ws_connections") or 0.0


async def session_count_is(count: float) -> bool:
    return connections() == count


async def finished_orders(stack: Stack) -> list[str]:
    """Orders that have ended, so each subscription is only backfill, from the cache."""
    ids = [(await stack.submit(ORDER)).json()["orderId"] for _ in range(ORDERS)]
    await asyncio.gather(*(stack.watch(order_id) for order_id in ids))
    return ids


@contextlib.asynccontextmanager
async def flooded(stack: Stack, ids: list[str]) -> AsyncIterator[RawClient]:
    """A client that asks for far more than its buffers hold, and does not read it."""
    before = connections()
    client = await RawClient.connect(f"{stack.ws_url}/ws")

    async def ask() -> None:
        await client.send_json({"op": "subscribe", "orderIds": ids})
        for _ in range(ROUNDS):
            await client.send_json({"op": "unsubscribe", "orderIds": ids})
            await client.send_json({"op": "subscribe", "orderIds": ids})

    # The server stops reading commands once its sends block: send them aside.
    asking = asyncio.create_task(ask())
    try:
        # The session gives up on the client (its send timed out).
        await eventually(
            lambda: session_count_is(before), timeout=CUT_OFF_WITHIN, what="the session to end"
        )
        yield client
    finally:
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        client.close()


async def test_a_client_that_never_reads_is_disconnected(start) -> None:
    stack: Stack = await start(ws_send_timeout_seconds=0.5, ws_backfill_cache_ttl_seconds=600)
    ids = await finished_orders(stack)

    async with flooded(stack, ids) as client:
        # Not only the session: the connection itself ends, though the client reads nothing.
        await eventually(
            client.reset_by_server,
            timeout=CUT_OFF_WITHIN,
            what="the notifier to drop the connection of a client that does not read",
        )


async def test_a_client_that_reads_again_finds_the_1008_close_after_its_data(start) -> None:
    stack: Stack = await start(ws_send_timeout_seconds=0.5, ws_backfill_cache_ttl_seconds=600)
    ids = await finished_orders(stack)

    async with flooded(stack, ids) as client:
        frames, close = await client.read_until_close()

    assert close is not None and close.code == 1008
    events = [f for f in frames if "event" in f]
    assert events and events[0]["orderId"] == ids[0]
