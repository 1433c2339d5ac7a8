"""Publishing order events with `Nats-Msg-Id`, so JetStream drops a repeated transition."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import PubAck

from dexec.bus.subjects import STREAM, event_subject
from dexec.orders.events import CamelModel, OrderEvent
from dexec.orders.states import EVENT_STATUS, EventType, OrderStatus

MSG_ID_HEADER = "Nats-Msg-Id"


async def publish_event(js: JetStreamContext, event: OrderEvent) -> PubAck:
    """Publish and wait for the stream's ack: once this returns, the transition is durable."""
    return await js.publish(
        event_subject(event.event, event.order_id),
        event.to_json(),
        stream=STREAM,
        headers={MSG_ID_HEADER: event.msg_id},
    )


async def emit(
    js: JetStreamContext,
    order_id: str,
    event: EventType,
    payload: CamelModel | None = None,
    *,
    attempt: int = 1,
    status: OrderStatus | None = None,
) -> PubAck:
    """Publish one transition; `status` is needed only for events that keep the status."""
    new_status = status or EVENT_STATUS[event]
    if new_status is None:
        raise ValueError(f"{event} keeps the order's status: pass it")
    return await publish_event(js, OrderEvent.of(order_id, event, new_status, payload, attempt))
