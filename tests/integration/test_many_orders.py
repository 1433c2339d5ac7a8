"""200 concurrent orders: every one terminal, none lost, no event duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter

import nats

from dexec.bus.history import read_order_events
from tests.support.stack import Stack
from tests.support.waiting import eventually

ORDERS = 200


async def events_per_order(nats_url: str, order_ids: set[str]) -> Counter[tuple[str, str]]:
    """How many times each (order, event) is in the stream."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        counts: Counter[tuple[str, str]] = Counter()
        for order_id in order_ids:
            for stored in await read_order_events(js, order_id):
                counts[(order_id, str(stored.event.event))] += 1
        return counts
    finally:
        await nc.close()


async def test_200_concurrent_orders_all_finish_once(stack: Stack) -> None:
    bodies = [
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": f"0.{i + 1:03d}"} for i in range(ORDERS)
    ]
    responses = await asyncio.gather(*(stack.submit(body) for body in bodies))
    assert [r.status_code for r in responses] == [202] * ORDERS
    order_ids = {r.json()["orderId"] for r in responses}
    assert len(order_ids) == ORDERS

    async def all_terminal() -> bool:
        done = await stack.scalar(
            "select count(*) from orders where status in ('confirmed', 'failed')"
        )
        return done == ORDERS

    await eventually(all_terminal, timeout=60, what="every order terminal in Postgres")

    recorded = await stack.rows("select id, status from orders")
    assert {row.id for row in recorded} == order_ids
    assert Counter(row.status for row in recorded) == {"confirmed": ORDERS}

    per_order = await events_per_order(stack.nats_url, order_ids)
    lifecycle = ("pending", "routing", "routed", "building", "submitted", "confirmed")
    assert per_order == Counter({(o, e): 1 for o in order_ids for e in lifecycle})
    assert await stack.scalar("select count(*) from order_events") == sum(per_order.values())
