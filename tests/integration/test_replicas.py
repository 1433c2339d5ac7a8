"""Two replicas each of router, executor and notifier share the work, with no duplicates."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.support.chain import landed_per_order
from tests.support.stack import Stack
from tests.support.waiting import eventually

ORDERS = 300
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]


async def test_two_replicas_share_work_and_execute_each_order_once(start) -> None:
    stack: Stack = await start(replicas=2)
    responses = await asyncio.gather(
        *(
            stack.submit({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "10"})
            for _ in range(ORDERS)
        )
    )
    order_ids = {r.json()["orderId"] for r in responses}
    assert len(order_ids) == ORDERS

    async def all_confirmed() -> bool:
        count = await stack.scalar("select count(*) from orders where status = 'confirmed'")
        return count == ORDERS

    async def statuses() -> object:
        rows = await stack.rows("select status, count(*) from orders group by status")
        return dict(rows)

    await eventually(
        all_confirmed, timeout=60, what="every order confirmed in Postgres", explain=statuses
    )

    # Both replicas of each worker took part.
    assert all(r.processed > 0 for r in stack.routers)
    assert all(e.processed > 0 for e in stack.executors)
    assert sum(r.processed for r in stack.routers) == ORDERS
    assert sum(e.processed for e in stack.executors) == ORDERS
    # Each order landed on the chain exactly once.
    assert await landed_per_order(stack.nats_url) == Counter({o: 1 for o in order_ids})
    # Each event recorded exactly once although two recorders share the consumer.
    rows = await stack.rows("select order_id, event from order_events")
    assert Counter((r.order_id, r.event) for r in rows) == Counter(
        {(o, e): 1 for o in order_ids for e in LIFECYCLE}
    )


async def test_every_notifier_replica_streams_every_event(start) -> None:
    stack: Stack = await start(replicas=2, latency_mode="realistic", slot_ms=100)
    order_id = (
        await stack.submit(
            {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 300}
        )
    ).json()["orderId"]

    streams = await asyncio.gather(
        *(stack.watch(order_id, ws_url=url) for url in stack.ws_urls for _ in range(3))
    )

    assert len(streams) == 6
    for messages in streams:
        assert [m["event"] for m in messages] == LIFECYCLE
