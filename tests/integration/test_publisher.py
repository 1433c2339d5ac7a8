"""Deferred publishes (sent at once, confirmed later, stored in the order they were sent),
publishes conditioned on another event's absence, and publishes through a delivery's fence."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from dexec.bus.fence import OrderFence, emit_fenced
from dexec.bus.history import read_order_events
from dexec.bus.publisher import Condition, SubjectMoved, emit, emit_deferred
from dexec.orders.events import Failure, Retry
from dexec.orders.states import EventType, OrderStatus


async def test_a_deferred_event_is_stored_before_what_follows_it_and_acked_once(
    js: JetStreamContext,
) -> None:
    order_id = "deferred-publish-order"

    building = await emit_deferred(js, order_id, EventType.BUILDING)
    after = await emit(js, order_id, EventType.ROUTING)
    first = await building.acked()
    assert not first.duplicate
    assert first.seq < after.seq  # sent first, stored first

    again = await emit_deferred(js, order_id, EventType.BUILDING)
    assert (await again.acked()).duplicate  # the same transition is dropped by its msg id

    stored = await read_order_events(js, order_id)
    assert [s.event.event for s in stored] == [EventType.BUILDING, EventType.ROUTING]


async def test_a_publish_unless_another_event_is_stored_is_refused_once_it_is(
    js: JetStreamContext,
) -> None:
    order_id = "guarded-publish-order"
    unless_routed = Condition.unless_stored(EventType.ROUTED, order_id)
    failure = Failure(code="NO_ROUTE", reason="no venue quoted", attempts=1)

    first = await emit(js, order_id, EventType.ROUTING, condition=unless_routed)
    assert not first.duplicate
    await emit(js, order_id, EventType.ROUTED, status=OrderStatus.ROUTING)
    with pytest.raises(SubjectMoved):
        await emit(js, order_id, EventType.FAILED, failure, condition=unless_routed)

    stored = await read_order_events(js, order_id)
    assert [s.event.event for s in stored] == [EventType.ROUTING, EventType.ROUTED]


async def test_a_fenced_publish_is_refused_once_another_event_of_the_order_is_stored(
    js: JetStreamContext,
) -> None:
    order_id, other_order = "fenced-order", "fenced-other-order"
    routed = await emit(js, order_id, EventType.ROUTED, status=OrderStatus.ROUTING)
    fence = OrderFence(order_id, routed.seq)

    building = await emit_fenced(js, fence, EventType.BUILDING)
    assert fence.seq == building.seq  # its own event moves the fence on
    await emit(js, other_order, EventType.ROUTING)  # another order's events do not count
    await emit_fenced(js, fence, EventType.ROUTING, attempt=2)

    # Another delivery of the order publishes: this one's next event is refused.
    late = OrderFence(order_id, fence.seq)
    await emit_fenced(js, late, EventType.RETRYING, _retry(), attempt=3, status=OrderStatus.ROUTING)
    failure = Failure(code="NO_ROUTE", reason="no venue quoted", attempts=2)
    with pytest.raises(SubjectMoved):
        await emit_fenced(js, fence, EventType.FAILED, failure, attempt=2)

    # A copy of a stored event is checked too, before it is dropped as a duplicate.
    with pytest.raises(SubjectMoved):
        await emit_fenced(js, OrderFence(order_id, routed.seq), EventType.BUILDING)
    at = late.seq
    again = await emit_fenced(js, late, EventType.BUILDING)
    assert again.duplicate and again.seq == building.seq
    assert late.seq == at  # nothing was stored: the fence stays
    stored = [s.event.event for s in await read_order_events(js, order_id)]
    assert stored == [EventType.ROUTED, EventType.BUILDING, EventType.ROUTING, EventType.RETRYING]


def _retry() -> Retry:
    return Retry(stage="router", code="QUOTE_TIMEOUT", reason="no quote in time", delay_seconds=1)
