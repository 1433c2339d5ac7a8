"""Deferred publishes (sent at once, confirmed later, stored in the order they were sent), and
publishes conditioned on another event's absence."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from dexec.bus.history import read_order_events
from dexec.bus.publisher import SubjectMoved, conditions_on_other_subjects, emit, emit_deferred
from dexec.bus.subjects import event_subject
from dexec.orders.events import Failure
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
    routed = event_subject(EventType.ROUTED, order_id)
    assert conditions_on_other_subjects(js)
    failure = Failure(code="NO_ROUTE", reason="no venue quoted", attempts=1)

    first = await emit(js, order_id, EventType.ROUTING, unless_stored=routed)
    assert not first.duplicate
    await emit(js, order_id, EventType.ROUTED, status=OrderStatus.ROUTING)
    with pytest.raises(SubjectMoved):
        await emit(js, order_id, EventType.FAILED, failure, unless_stored=routed)

    stored = await read_order_events(js, order_id)
    assert [s.event.event for s in stored] == [EventType.ROUTING, EventType.ROUTED]
