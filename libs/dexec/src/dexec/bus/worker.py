"""A pull-consumer worker: fetch in batches, run handlers concurrently, apply the retry policy.

The policy (DESIGN §2): a `TransientError` (or an unexpected exception) is retried with
exponential backoff through `nak(delay)` for at most `max_attempts` deliveries; a
`PermanentError`, or the last attempt, publishes `failed` and `term()`s the message.

A message can come back after its stage's work is done: the ack was lost (a crash between the
last publish and the ack, a dropped connection), or the durable was recreated. So a
redelivery, and any retry or failure, first looks in the stream for the events that show the
stage done (`Stage.done_by`); if one is there, the message is only acked. (A stage whose
handler reads them itself on every delivery, `Stage.handler_checks_done`, is not read for
twice on a redelivery.) Without this a
router re-planning a routed order could publish `failed` for an order the executor was
executing, or had confirmed. Another delivery can still finish the stage between that read
and the publish, so `retrying` and `failed` are also conditional publishes: stored only while
the order has no `Stage.guard` event (the router's `routed`, the executor's `confirmed`),
or, once the handler has set the delivery's fence (`Delivery.fence`), only while nothing of
the order was stored since the last event the delivery knows of. Refused, the message is
acked if the stream shows the stage done; else another delivery holds the order, and this
one leaves the message to it, neither acked nor nak'ed.

Each message is handled in a span of the stage's scope (`dexec.router`, `dexec.executor`)
that continues the trace its `traceparent` carries, with the order id set for the logs; the
worker counts what it consumed, retried and gave up on (`dexec.metrics`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from dexec import tracing
from dexec.backoff import doubling_delay
from dexec.bus.errors import PermanentError, StageError, Superseded, TransientError
from dexec.bus.fence import OrderFence
from dexec.bus.history import read_latest_events
from dexec.bus.publisher import Condition, SubjectMoved, emit
from dexec.bus.pull import PullLoop
from dexec.bus.subjects import ConsumerSpec
from dexec.metrics import EVENTS_CONSUMED, ORDER_FAILURES, ORDER_RETRIES, Children
from dexec.orders.events import Failure, OrderEvent, Retry
from dexec.orders.states import EventType, OrderStatus
from dexec.settings import CommonSettings
from dexec.telemetry import ORDER_ID

log = logging.getLogger(__name__)

# Failures of the bus itself (every nats-py error derives from nats.errors.Error).
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (NatsError, ConnectionError)


@dataclass
class Delivery:
    """What a handler knows about the message it is handling."""

    msg: Msg
    attempt: int
    ack_wait: float
    # When JetStream's ack timer last (re)started: on delivery, then at each in_progress.
    timer_started: float = field(default_factory=time.monotonic)
    # Set by a handler that publishes through a fence (`dexec.bus.fence`): the worker's own
    # `retrying` and `failed` then go through it too.
    fence: OrderFence | None = None
    # The status the order is known to have reached beyond the stage's own (an executor's
    # order is `submitted` once a signature is written ahead): a `retrying` reports it when the
    # error does not say otherwise, so the status clients see never goes back.
    reached: OrderStatus | None = None

    @property
    def seq(self) -> int:
        """The stream sequence of the message handled."""
        return self.msg.metadata.sequence.stream

    async def in_progress(self) -> None:
        """Reset the ack timer during slow work, so JetStream does not redeliver it."""
        await self.msg.in_progress()
        self.timer_started = time.monotonic()

    async def keep_alive(self) -> None:
        """`in_progress`, but only once a third of the ack wait has gone: fast work sends none."""
        if time.monotonic() - self.timer_started > self.ack_wait / 3:
            await self.in_progress()


Handler = Callable[[OrderEvent, Delivery], Awaitable[None]]


@dataclass(frozen=True)
class Stage:
    name: str
    # Status reported on `retrying`/`failed` events when the error does not say otherwise.
    status: OrderStatus
    # Events whose presence in the stream shows this stage's work on the order is done.
    done_by: frozenset[EventType]
    # The event that shows the stage's work done, for good: `retrying` and `failed` are
    # published only while the order has none (None: unconditionally).
    guard: EventType | None = None
    # The handler reads `done_by` itself on every delivery and returns when one is there (so
    # the message is acked): the worker does not read them again before a redelivery.
    handler_checks_done: bool = False


class ConsumerWorker:
    """Runs one stage's handler on a durable consumer, with the retry policy above."""

    def __init__(
        self,
        js: JetStreamContext,
        settings: CommonSettings,
        spec: ConsumerSpec,
        stage: Stage,
        handler: Handler,
        *,
        concurrency: int = 256,
        batch: int = 64,
    ) -> None:
        self._js = js
        self._settings = settings
        self._stage = stage
        self._handler = handler
        self._pull = PullLoop(
            js, settings, spec, self._process, concurrency=concurrency, batch=batch
        )
        # Messages this worker finished (acked or terminated): shows how replicas share work.
        self.processed = 0
        self._consumed = Children(EVENTS_CONSUMED, spec.durable).bind(_events_of(spec))
        self._retries = Children(ORDER_RETRIES, stage.name)
        self._failures = Children(ORDER_FAILURES, stage.name)
        self._scope = f"dexec.{stage.name}"
        self._span_names = {event: f"{stage.name} {event}" for event in EventType}

    async def start(self) -> None:
        await self._pull.start()

    async def stop(self, timeout: float = 10.0) -> None:
        await self._pull.stop(timeout)

    async def _process(self, msg: Msg) -> None:
        try:
            event = OrderEvent.from_json(msg.data)
        except ValidationError:
            log.error("dropping malformed message on %s", msg.subject)
            await msg.term()
            return
        self._consumed[event.event].inc()
        ORDER_ID.set(event.order_id)  # this task's logs name the order
        parent = tracing.extract(msg.headers)
        with tracing.consumer_span(self._scope, self._span_names[event.event], parent) as span:
            if span.is_recording():
                span.set_attributes(
                    {
                        "messaging.system": "nats",
                        "messaging.destination.name": msg.subject,
                        "messaging.consumer.group.name": self._stage.name,
                        "dexec.order_id": event.order_id,
                        "dexec.delivery": msg.metadata.num_delivered,
                    }
                )
            await self._process_event(event, msg)

    async def _process_event(self, event: OrderEvent, msg: Msg) -> None:
        try:
            await self._handle(event, msg, msg.metadata.num_delivered)
        except INFRASTRUCTURE_ERRORS as exc:
            # NATS is restarting or unreachable: not the order's fault, so it does not end the
            # order `failed` even on its last attempt; the message comes back (now, or after
            # ack_wait) and resumes. That redelivery still counts as an attempt (attempts are
            # deliveries: each gets its own number, so a re-signed `submitted` gets its own
            # msg id), which leaves fewer retries for the order's own transient errors.
            log.warning(
                "%s: infrastructure error, redelivering: %r",
                self._stage.name,
                exc,
                extra={"order_id": event.order_id},
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._settings.retry_backoff_base_seconds)
        except Exception:
            log.exception("%s: handler crashed", self._stage.name)

    async def _handle(self, event: OrderEvent, msg: Msg, attempt: int) -> None:
        if attempt > 1 and not self._stage.handler_checks_done and await self._already_done(event):
            await msg.ack()
            self.processed += 1
            return
        delivery = Delivery(msg, attempt, self._settings.ack_wait_seconds)
        try:
            await self._handler(event, delivery)
            await msg.ack()
        except Superseded:
            if not await self._already_done(event):
                self._leave(event)
                return
            await msg.ack()  # the other delivery finished the order meanwhile
        except PermanentError as exc:
            if not await self._already_done(event) and not await self._give_up(
                event, exc, delivery
            ):
                self._leave(event)
                return
            await msg.term()
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, TransientError) else _unexpected(exc)
            if await self._already_done(event):
                await msg.ack()
            elif attempt >= self._settings.retry_max_attempts:
                if not await self._give_up(event, error, delivery):
                    self._leave(event)
                    return
                await msg.term()
            else:
                delay = doubling_delay(attempt, self._settings.retry_backoff_base_seconds)
                retried = await self._retry(event, error, delivery, delay)
                if retried is None:
                    self._leave(event)
                    return
                if not retried:
                    await msg.ack()
                else:
                    await msg.nak(delay=delay)
                    return  # it comes back: not finished here
        self.processed += 1

    def _leave(self, event: OrderEvent) -> None:
        """The order moved on without this delivery (another one holds it): this one stops,
        and neither acks nor naks. If no other delivery acks the message, JetStream
        redelivers it after the ack wait."""
        log.info(
            "%s: another delivery has the order; this one stops",
            self._stage.name,
            extra={"order_id": event.order_id},
        )

    async def _already_done(self, event: OrderEvent) -> bool:
        """Whether the stream shows this stage's work on the order done (by any delivery)."""
        done = await read_latest_events(self._js, event.order_id, self._stage.done_by)
        if done:
            log.info(
                "%s: the order is past this stage (%s); acking",
                self._stage.name,
                done[-1].event.event,
                extra={"order_id": event.order_id},
            )
        return bool(done)

    async def _emit_unless_moved(
        self,
        event: OrderEvent,
        kind: EventType,
        payload: Retry | Failure,
        delivery: Delivery,
        status: OrderStatus | None = None,
    ) -> PubAck | None:
        """Publish `retrying` or `failed` through the delivery's fence, or (before it has one)
        unless the stage's guard event is stored. None: refused, nothing was published."""
        guard = self._stage.guard
        if delivery.fence is not None:
            condition: Condition | None = delivery.fence.condition()
        else:
            condition = Condition.unless_stored(guard, event.order_id) if guard else None
        try:
            ack = await emit(
                self._js,
                event.order_id,
                kind,
                payload,
                attempt=delivery.attempt,
                status=status,
                condition=condition,
            )
        except SubjectMoved:
            log.info(
                "%s: the order moved on meanwhile; not publishing %s",
                self._stage.name,
                kind,
                extra={"order_id": event.order_id},
            )
            return None
        if delivery.fence is not None:
            delivery.fence.passed(ack)
        return ack

    async def _retry(
        self, event: OrderEvent, error: StageError, delivery: Delivery, delay: float
    ) -> bool | None:
        """Publish `retrying`: True if it was, False if it was refused because the stage is
        done (nothing to retry), None if refused while it is not (another delivery has it)."""
        log.info(
            "retrying %s after %s (attempt %d, in %.2fs)",
            self._stage.name,
            error.code,
            delivery.attempt,
            delay,
            extra={"order_id": event.order_id},
        )
        retry = Retry(
            stage=self._stage.name, code=error.code, reason=error.reason, delay_seconds=delay
        )
        status = error.status or delivery.reached or self._stage.status
        ack = await self._emit_unless_moved(event, EventType.RETRYING, retry, delivery, status)
        if ack is None:
            return False if await self._already_done(event) else None
        if not ack.duplicate:  # a redelivered attempt was counted the first time
            self._retries[error.code].inc()
        _mark_span(error, "retrying")
        return True

    async def _give_up(self, event: OrderEvent, error: StageError, delivery: Delivery) -> bool:
        """Publish `failed`. False if it was refused while the stage is not done: another
        delivery has the order (True: the message is finished, failed or done)."""
        failure = Failure(
            code=error.code,
            reason=error.reason,
            attempts=delivery.attempt,
            details={"stage": self._stage.name, **error.details},
        )
        ack = await self._emit_unless_moved(event, EventType.FAILED, failure, delivery)
        if ack is None:
            return await self._already_done(event)
        log.warning(
            "order failed in %s: %s", self._stage.name, error, extra={"order_id": event.order_id}
        )
        if not ack.duplicate:
            self._failures[error.code].inc()
        _mark_span(error, "failed")
        return True


def _events_of(spec: ConsumerSpec) -> list[EventType]:
    """The event types a consumer's filter (`orders.<event>.*` or `orders.>`) lets through."""
    parts = spec.filter_subject.split(".")
    named = parts[1] if len(parts) > 2 else None
    return [EventType(named)] if named in EventType.__members__.values() else list(EventType)


def _mark_span(error: StageError, what: str) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(what, {"dexec.error.code": error.code, "dexec.error.reason": error.reason})
        span.set_status(StatusCode.ERROR, error.code)


def _unexpected(exc: Exception) -> TransientError:
    # An unexpected error may be a passing fault (a dropped connection); retry it, and if it
    # persists the order still ends `failed` with the error recorded instead of being lost.
    log.exception("unexpected error in handler")
    return TransientError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
