"""Deferred publishes: sent at once, confirmed later, stored in the order they were sent."""

from __future__ import annotations

from nats.js import JetStreamContext

from dexec.bus.history import read_order_events
from dexec.bus.publisher import emit, emit_deferred
from dexec.orders.states import EventType


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
