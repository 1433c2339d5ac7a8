"""A delivery's fence on its order: the stream sequence of the order's last event it knows of.

Two deliveries of one message can work on an order at once: JetStream redelivers a message
whose handler stopped answering past the ack wait, and the stopped one may wake up later.
A delivery that publishes through its fence (`emit_fenced`) has the event stored only if no
event of the order was stored since the last one it knows of (a publish conditioned on
`orders.*.<orderId>`); else `SubjectMoved`, and it must read the order again before it acts.
Each of its own stored events moves the fence on. So of two deliveries, whichever publishes
second finds out about the other, instead of publishing beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import PubAck

from dexec.bus.publisher import Condition, emit
from dexec.orders.events import CamelModel
from dexec.orders.states import EventType, OrderStatus


@dataclass
class OrderFence:
    order_id: str
    seq: int  # the stream sequence of the order's last event this delivery knows of

    def condition(self) -> Condition:
        return Condition.nothing_since(self.order_id, self.seq)

    def passed(self, ack: PubAck) -> None:
        """Move the fence on to the event a publish through it stored. A duplicate (an event
        of this msg id was stored before, at or below the fence) stored nothing: it stays."""
        if not ack.duplicate:
            self.seq = ack.seq


async def emit_fenced(
    js: JetStreamContext,
    fence: OrderFence,
    event: EventType,
    payload: CamelModel | None = None,
    *,
    attempt: int = 1,
    status: OrderStatus | None = None,
) -> PubAck:
    """`emit`, stored only while nothing of the order was stored since the fence (else
    `SubjectMoved`); moves the fence on to the event stored."""
    ack = await emit(
        js,
        fence.order_id,
        event,
        payload,
        attempt=attempt,
        status=status,
        condition=fence.condition(),
    )
    fence.passed(ack)
    return ack
