"""The router: consumes `pending`, plans the route, publishes `routing` then `routed`.

It also answers quotes and the market catalogue over NATS request/reply (`QuoteServer`).
"""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.js import JetStreamContext

from dexec.bus.connection import connect, disconnect, ensure_stream
from dexec.bus.errors import PermanentError, Superseded, TransientError
from dexec.bus.publisher import Condition, PendingAck, SubjectMoved, emit, emit_deferred
from dexec.bus.subjects import ROUTER_CONSUMER
from dexec.bus.worker import ConsumerWorker, Delivery, Stage
from dexec.market.chain import SlotClock
from dexec.market.market import Market
from dexec.market.tokens import resolve_token
from dexec.orders.events import OrderEvent, OrderSpec
from dexec.orders.states import TERMINAL_EVENTS, EventType, OrderStage, OrderStatus
from dexec_router.metrics import observe_routed, route_log_fields, routing_started
from dexec_router.planner import RoutePlanner, RoutingFailed
from dexec_router.quote_server import QuoteServer
from dexec_router.settings import RouterSettings

log = logging.getLogger(__name__)

# Routing is done once the order is routed (the executor has it) or has ended.
ROUTER_STAGE = Stage(
    OrderStage.ROUTER,
    OrderStatus.ROUTING,
    done_by=TERMINAL_EVENTS | {EventType.ROUTED},
    guard=EventType.ROUTED,
)


class RouterService:
    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.market = Market.from_settings(settings)
        self.clock = SlotClock(settings.slot_ms)
        self.planner = RoutePlanner(self.market, settings, self.clock)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._worker: ConsumerWorker | None = None
        self._quotes: QuoteServer | None = None

    async def start(self) -> None:
        self._nc = await connect(self.settings, "dexec-router")
        # One context: it holds the inbox that deferred publishes' acks come back to.
        js = self._js = self._nc.jetstream()
        await ensure_stream(js, self.settings)
        self._quotes = QuoteServer(self._nc, self.planner, self.settings.router_concurrency)
        await self._quotes.start()
        self._worker = ConsumerWorker(
            js,
            self.settings,
            ROUTER_CONSUMER,
            ROUTER_STAGE,
            self.handle,
            concurrency=self.settings.router_concurrency,
        )
        await self._worker.start()

    @property
    def processed(self) -> int:
        """Messages this replica finished: shows how replicas share the work."""
        return self._worker.processed if self._worker else 0

    @property
    def quotes_answered(self) -> int:
        return self._quotes.answered if self._quotes else 0

    async def stop(self) -> None:
        if self._quotes:
            await self._quotes.stop()
        if self._worker:
            await self._worker.stop()
        if self._nc:
            await disconnect(self._nc)

    async def handle(self, event: OrderEvent, delivery: Delivery) -> None:
        js = self._js
        assert js is not None
        spec: OrderSpec = event.payload()
        order_id = event.order_id
        # Routing goes out now and is confirmed before `routed`: the plan overlaps its ack.
        # A first delivery's is stored only while nothing follows the order's `pending`. Else
        # the order is under way already (its durable was recreated, say, and delivers every
        # `pending` again as a first delivery, which the worker does not check): routed again
        # past the duplicate window, it would be executed again.
        first = delivery.attempt == 1
        routing = await emit_deferred(
            js,
            order_id,
            EventType.ROUTING,
            attempt=delivery.attempt,
            condition=Condition.nothing_since(order_id, delivery.seq) if first else None,
        )
        started = routing_started(event, delivery.attempt)
        token_in, token_out = resolve_token(spec.token_in), resolve_token(spec.token_out)
        try:
            route = await self.planner.plan(
                token_in,
                token_out,
                spec.amount_in,
                spec.slippage_bps,
                key=f"{order_id}:{delivery.attempt}",
            )
        except RoutingFailed as exc:
            await _stored(routing)
            log.info("not routed: %s %s", exc.code, exc.details, extra={"order_id": order_id})
            kind = TransientError if exc.retryable else PermanentError
            raise kind(exc.code, exc.message, details=exc.details) from exc
        await _stored(routing)
        if log.isEnabledFor(logging.INFO):  # the quotes are dumped only for a line written
            log.info(
                "routed %s %s → %s: %s",
                spec.amount_in,
                token_in.symbol,
                token_out.symbol,
                route.reason,
                extra={"order_id": order_id, **route_log_fields(route)},
            )
        try:
            # Never beside a `failed` that another delivery of the order published meanwhile
            # (whose own `failed` is stored only while there is no `routed`: ROUTER_STAGE).
            ack = await emit(
                js,
                order_id,
                EventType.ROUTED,
                route,
                attempt=delivery.attempt,
                status=OrderStatus.ROUTING,
                condition=Condition.unless_stored(EventType.FAILED, order_id),
            )
        except SubjectMoved:
            log.info("not routed: the order failed meanwhile", extra={"order_id": order_id})
            return
        if not ack.duplicate:  # a repeat of another delivery's `routed` is not a route more
            observe_routed(route, started)


async def _stored(routing: PendingAck) -> None:
    """Wait for `routing` to be stored; `Superseded` if its condition was refused (the worker
    then acks the message if the order is past routing, else leaves it for a redelivery)."""
    try:
        await routing.acked()
    except SubjectMoved as exc:
        raise Superseded(routing.order_id) from exc
