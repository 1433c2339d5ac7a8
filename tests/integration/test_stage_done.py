"""A message that comes back after its stage's work is done is only acked.

The router's `pending` comes back when its ack was lost (a crash between `routed` and the ack,
a dropped connection) or when its durable is recreated. Planning again then could fail (the
venues are down now) and must not end, retry or re-plan an order the executor has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nats
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_consumer
from dexec.bus.subjects import ROUTER_CONSUMER, STREAM
from dexec_router.service import RouterService
from dexec_router.settings import RouterSettings
from tests.support.stack import Stack, service_values
from tests.support.stream import event_counts
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "2", "slippageBps": 300}
BACKOFF = 0.1


async def _confirmed_order(stack: Stack, settings: RouterSettings) -> str:
    """An order routed by a router that then goes away, and confirmed."""
    router = RouterService(settings)
    await router.start()
    try:
        order_id: str = (await stack.submit(ORDER)).json()["orderId"]
        messages = await stack.watch(order_id)
    finally:
        await router.stop()
    assert messages[-1]["event"] == "confirmed"
    return order_id


async def _router_done(router: RouterService) -> None:
    async def finished() -> bool:
        return router.processed == 1

    await eventually(finished, what="the router finished the message")


async def _end_recorded(stack: Stack, order_id: str) -> Any:
    rows = await stack.rows("select status, failure from orders where id = :id", id=order_id)
    return rows[0]


async def test_a_recreated_router_durable_does_not_fail_a_routed_order(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    stack: Stack = await start(without=frozenset({"router"}), retry_backoff_base_seconds=BACKOFF)
    values = service_values(nats_url, database_url, retry_backoff_base_seconds=BACKOFF)
    order_id = await _confirmed_order(stack, RouterSettings(**values))

    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_consumer(STREAM, ROUTER_CONSUMER.durable)
    finally:
        await nc.close()
    # Its venues are down: planning the order again could only fail. Starting it recreates
    # the durable, which delivers the order's `pending` again, as a first delivery.
    router = RouterService(RouterSettings(**values, venues_down="raydium,meteora"))
    await router.start()
    try:
        await _router_done(router)
    finally:
        await router.stop()

    counts = await event_counts(nats_url, order_id)
    assert counts.get("retrying", 0) == 0
    assert counts.get("failed", 0) == 0
    row = await _end_recorded(stack, order_id)
    assert (row.status, row.failure) == ("confirmed", None)


async def _deliver_once_unacked(js: JetStreamContext, settings: RouterSettings) -> None:
    """What a router killed between `routed` and its ack leaves: `pending` delivered, unacked."""
    await js.delete_consumer(STREAM, ROUTER_CONSUMER.durable)
    await ensure_consumer(js, ROUTER_CONSUMER, settings, max_ack_pending=16)
    sub = await js.pull_subscribe_bind(ROUTER_CONSUMER.durable, stream=STREAM)
    try:
        [msg] = await sub.fetch(1, timeout=10)
        await msg.nak()  # back at once, as its second delivery
    finally:
        await sub.unsubscribe()


async def test_a_redelivered_pending_of_a_routed_order_is_acked_without_planning(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    stack: Stack = await start(without=frozenset({"router"}))
    settings = RouterSettings(**service_values(nats_url, database_url))
    order_id = await _confirmed_order(stack, settings)

    nc = await nats.connect(nats_url)
    try:
        await _deliver_once_unacked(nc.jetstream(), settings)
    finally:
        await nc.close()
    router = RouterService(settings)
    plans: list[tuple[Any, ...]] = []
    plan = router.planner.plan

    async def counted_plan(*args: Any, **kwargs: Any) -> Any:
        plans.append(args)
        return await plan(*args, **kwargs)

    router.planner.plan = counted_plan  # type: ignore[method-assign]
    await router.start()
    try:
        await _router_done(router)
    finally:
        await router.stop()

    assert plans == []
    counts = await event_counts(nats_url, order_id)
    assert (counts["routing"], counts["routed"], counts.get("failed", 0)) == (1, 1, 0)
    row = await _end_recorded(stack, order_id)
    assert row.status == "confirmed"
