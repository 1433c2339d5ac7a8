"""A message that comes back after its stage's work is done is only acked.

The router's `pending` comes back when its ack was lost (a crash between `routed` and the ack,
a dropped connection) or when its durable is recreated. Planning again then could fail (the
venues are down now) and must not end, retry or re-plan an order the executor has. Nor may a
delivery whose order another delivery routes while it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_consumer
from dexec.bus.errors import PermanentError, StageError, TransientError
from dexec.bus.publisher import emit
from dexec.bus.subjects import ROUTER_CONSUMER, STREAM
from dexec.bus.worker import ConsumerWorker, Delivery
from dexec.orders.events import Failure, OrderEvent
from dexec.orders.states import EventType, OrderStatus
from dexec.settings import CommonSettings
from dexec_router.service import ROUTER_STAGE, RouterService
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
    """The order's row once the recorder has folded an end into it."""

    async def ended() -> Any:
        rows = await stack.rows("select status, failure from orders where id = :id", id=order_id)
        return rows[0] if rows and rows[0].status in ("confirmed", "failed") else None

    return await eventually(ended, what="the order's end recorded")


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


class FinishedMeanwhile(ConsumerWorker):
    """A worker whose order another delivery routes between its stream read and its publish:
    the narrow race the stage's guard closes (injected here, where it can be timed)."""

    async def _already_done(self, event: OrderEvent) -> bool:
        done = await super()._already_done(event)
        await emit(self._js, event.order_id, EventType.ROUTED, status=OrderStatus.ROUTING)
        return done


@pytest.mark.parametrize(
    "error",
    [
        TransientError("QUOTE_TIMEOUT", "every venue timed out"),
        PermanentError("NO_ROUTE", "no venue can fill the order"),
    ],
)
async def test_a_stage_routed_meanwhile_publishes_neither_retrying_nor_failed(
    js: JetStreamContext, nats_url: str, error: StageError
) -> None:
    order_id = f"routed-meanwhile-{error.code.lower()}"
    settings = CommonSettings(nats_url=nats_url, retry_backoff_base_seconds=BACKOFF)
    handled: list[int] = []

    async def fails(event: OrderEvent, delivery: Delivery) -> None:
        handled.append(delivery.attempt)
        raise error

    worker = FinishedMeanwhile(js, settings, ROUTER_CONSUMER, ROUTER_STAGE, fails)
    await worker.start()
    try:
        pending = await emit(js, order_id, EventType.PENDING)

        async def finished() -> bool:
            return worker.processed == 1

        await eventually(finished, what="the worker finished the message")
        info = await js.consumer_info(STREAM, ROUTER_CONSUMER.durable)
    finally:
        await worker.stop()

    assert handled == [1]  # settled on its first delivery: not sent back for a retry
    assert info.ack_floor.stream_seq == pending.seq and info.num_ack_pending == 0
    counts = await event_counts(nats_url, order_id)
    assert counts == {"pending": 1, "routed": 1}


async def test_a_router_whose_order_failed_meanwhile_does_not_route_it(
    start: Callable[..., Any], nats_url: str, database_url: str
) -> None:
    stack: Stack = await start(without=frozenset({"router"}))
    router = RouterService(RouterSettings(**service_values(nats_url, database_url)))
    plan = router.planner.plan

    async def failed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        """Plan, while another delivery of the order gives up on it and publishes `failed`."""
        route = await plan(*args, **kwargs)
        order_id = kwargs["key"].split(":")[0]
        failure = Failure(code="QUOTE_TIMEOUT", reason="every venue timed out", attempts=3)
        assert router._js is not None
        await emit(router._js, order_id, EventType.FAILED, failure, attempt=3)
        return route

    router.planner.plan = failed_meanwhile  # type: ignore[method-assign]
    await router.start()
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        await _router_done(router)
    finally:
        await router.stop()

    counts = await event_counts(nats_url, order_id)
    assert counts.get("routed", 0) == 0
    assert counts["failed"] == 1
    row = await _end_recorded(stack, order_id)
    assert row.status == "failed"
