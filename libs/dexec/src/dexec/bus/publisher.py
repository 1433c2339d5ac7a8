"""Publishing order events with `Nats-Msg-Id`, so JetStream drops a repeated transition.

Each message also carries the current trace context (`traceparent`, see `dexec.tracing`), so
whoever consumes the event continues the order's trace.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry.trace import SpanKind

from dexec import tracing
from dexec.bus.subjects import STREAM, event_subject
from dexec.metrics import PUBLISHED
from dexec.orders.events import CamelModel, OrderEvent
from dexec.orders.states import EVENT_STATUS, EventType, OrderStatus

MSG_ID_HEADER = "Nats-Msg-Id"
_SPAN_NAMES = {event: f"publish {event}" for event in EventType}


async def publish_event(js: JetStreamContext, event: OrderEvent) -> PubAck:
    """Publish and wait for the stream's ack: once this returns, the transition is durable."""
    subject = event_subject(event.event, event.order_id)
    headers = {MSG_ID_HEADER: event.msg_id}
    # A span of its own only inside a sampled trace; otherwise the current context is passed on.
    with tracing.child_span("dexec.bus", _SPAN_NAMES[event.event], SpanKind.PRODUCER) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.system": "nats",
                    "messaging.destination.name": subject,
                    "dexec.order_id": event.order_id,
                    "dexec.attempt": event.attempt,
                }
            )
        tracing.inject(headers)
        ack = await js.publish(subject, event.to_json(), stream=STREAM, headers=headers)
    if not ack.duplicate:
        PUBLISHED[event.event].inc()
    return ack


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
