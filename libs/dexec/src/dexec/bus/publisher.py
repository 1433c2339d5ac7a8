"""Publishing order events with `Nats-Msg-Id`, so JetStream drops a repeated transition.

Each message also carries the current trace context (`traceparent`, see `dexec.tracing`), so
whoever consumes the event continues the order's trace.

A publish either waits for the stream's ack (`emit`), or is sent at once and confirmed later
(`emit_deferred`), so a handler can overlap the round trip with its next step. Publishes on
one connection reach the stream in the order they were sent, so a deferred event is stored
before anything the same service publishes after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError
from opentelemetry.trace import SpanKind

from dexec import tracing
from dexec.bus.errors import WRONG_LAST_SEQUENCE
from dexec.bus.subjects import STREAM, event_subject, order_subjects
from dexec.metrics import PUBLISHED
from dexec.orders.events import CamelModel, OrderEvent
from dexec.orders.states import EVENT_STATUS, EventType, OrderStatus

MSG_ID_HEADER = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ_HEADER = "Nats-Expected-Last-Subject-Sequence"
# Which subject (a wildcard is allowed) that condition is on: NATS 2.11 and later, which
# `dexec.bus.connection.connect` requires.
EXPECTED_SUBJECT_HEADER = "Nats-Expected-Last-Subject-Sequence-Subject"
# How long a deferred publish waits for its ack (JetStream's own default request timeout).
ACK_TIMEOUT_SECONDS = 5.0
_SPAN_NAMES = {event: f"publish {event}" for event in EventType}


class SubjectMoved(Exception):
    """A conditional publish was refused: the subject has a message it did not expect."""


@dataclass(frozen=True)
class Condition:
    """Store the event only if the last message on `subject` has stream sequence `last_seq`
    (0: there is none); else the server refuses it (`SubjectMoved`). The server checks one
    condition per publish, before it looks for a duplicate msg id: a copy of a stored event
    is refused too if the condition no longer holds."""

    subject: str
    last_seq: int

    @classmethod
    def unless_stored(cls, event: EventType, order_id: str) -> Condition:
        """Unless the order has a `event` event."""
        return cls(event_subject(event, order_id), 0)

    @classmethod
    def nothing_since(cls, order_id: str, seq: int) -> Condition:
        """Unless any event of the order was stored after stream sequence `seq`."""
        return cls(order_subjects(order_id), seq)

    def headers(self) -> dict[str, str]:
        return {
            EXPECTED_LAST_SUBJECT_SEQ_HEADER: str(self.last_seq),
            EXPECTED_SUBJECT_HEADER: self.subject,
        }


class PendingAck:
    """A publish already sent, whose ack is awaited later with `acked()`."""

    def __init__(self, event: OrderEvent, future: asyncio.Future[PubAck]) -> None:
        self._event = event
        self._future = future
        # nats-py frees a publish's slot among its 4,000 async publishes only when the future
        # is done: an ack lost in a reconnect must still end it, awaited or not, or the slots
        # run out and every later publish waits forever.
        self._expiry = asyncio.get_running_loop().call_later(ACK_TIMEOUT_SECONDS, self._expire)
        future.add_done_callback(self._settled)

    @property
    def order_id(self) -> str:
        return self._event.order_id

    def _expire(self) -> None:
        if not self._future.done():
            self._future.set_exception(NatsTimeoutError())

    def _settled(self, done: asyncio.Future[PubAck]) -> None:
        self._expiry.cancel()
        # A handler that fails before it awaits the ack leaves no unretrieved exception.
        if not done.cancelled():
            done.exception()

    async def acked(self) -> PubAck:
        """Once this returns, the transition is durable; `nats.errors.TimeoutError` if the
        ack did not come within ACK_TIMEOUT_SECONDS of the publish, `SubjectMoved` if its
        condition was refused."""
        try:
            ack = await self._future
        except APIError as exc:
            _raise_if_moved(exc, event_subject(self._event.event, self._event.order_id))
            raise
        _count(self._event, ack)
        return ack


async def publish_event(
    js: JetStreamContext,
    event: OrderEvent,
    timeout: float | None = None,
    *,
    condition: Condition | None = None,
) -> PubAck:
    """Publish and wait for the stream's ack: once this returns, the transition is durable.

    `timeout` bounds the wait (the JetStream context's default if None); publishing the same
    event again is safe, since the stream drops the copy by its msg id. With a `condition`,
    `SubjectMoved` if the server refuses it."""
    subject, headers = event_subject(event.event, event.order_id), _headers(event)
    if condition is not None:
        headers.update(condition.headers())
    with _producer_span(event, subject, headers):
        try:
            ack = await js.publish(
                subject, event.to_json(), timeout=timeout, stream=STREAM, headers=headers
            )
        except APIError as exc:
            _raise_if_moved(exc, subject)
            raise
    _count(event, ack)
    return ack


def _raise_if_moved(exc: APIError, subject: str) -> None:
    if exc.err_code in WRONG_LAST_SEQUENCE:
        raise SubjectMoved(subject) from exc


async def emit(
    js: JetStreamContext,
    order_id: str,
    event: EventType,
    payload: CamelModel | None = None,
    *,
    attempt: int = 1,
    status: OrderStatus | None = None,
    condition: Condition | None = None,
) -> PubAck:
    """Publish one transition; `status` is needed only for events that keep the status;
    `condition` makes it conditional (`publish_event`)."""
    return await publish_event(
        js, build_event(order_id, event, payload, attempt, status), condition=condition
    )


async def emit_deferred(
    js: JetStreamContext,
    order_id: str,
    event: EventType,
    payload: CamelModel | None = None,
    *,
    attempt: int = 1,
    status: OrderStatus | None = None,
    condition: Condition | None = None,
) -> PendingAck:
    """`emit`, sent now with the ack awaited later (`PendingAck.acked()`)."""
    pending = build_event(order_id, event, payload, attempt, status)
    subject, headers = event_subject(pending.event, order_id), _headers(pending)
    if condition is not None:
        headers.update(condition.headers())
    with _producer_span(pending, subject, headers):
        future = await js.publish_async(subject, pending.to_json(), stream=STREAM, headers=headers)
    return PendingAck(pending, future)


def build_event(
    order_id: str,
    event: EventType,
    payload: CamelModel | None = None,
    attempt: int = 1,
    status: OrderStatus | None = None,
) -> OrderEvent:
    """The transition as it is published; `status` only for events that keep the status."""
    new_status = status or EVENT_STATUS[event]
    if new_status is None:
        raise ValueError(f"{event} keeps the order's status: pass it")
    return OrderEvent.of(order_id, event, new_status, payload, attempt)


def _headers(event: OrderEvent) -> dict[str, str]:
    return {MSG_ID_HEADER: event.msg_id}


@contextmanager
def _producer_span(event: OrderEvent, subject: str, headers: dict[str, str]) -> Iterator[None]:
    """A span of its own only inside a sampled trace; the context goes on in `headers`."""
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
        yield


def _count(event: OrderEvent, ack: PubAck) -> None:
    if not ack.duplicate:
        PUBLISHED[event.event].inc()
