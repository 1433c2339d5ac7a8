"""The router: consumes `pending`, quotes every venue, publishes `routing` then `routed`."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from dexec.bus.connection import connect, ensure_stream
from dexec.bus.errors import PermanentError, TransientError
from dexec.bus.publisher import emit
from dexec.bus.subjects import ROUTER_CONSUMER
from dexec.bus.worker import ConsumerWorker, Delivery, Stage
from dexec.market.chain import SlotClock
from dexec.market.market import Market
from dexec.market.routing import NoRoute, choose_route, network_fee_lamports
from dexec.market.tokens import resolve_token
from dexec.orders.events import OrderEvent, OrderSpec
from dexec.orders.states import EventType, OrderStatus
from dexec_router.quoting import gather_quotes
from dexec_router.settings import RouterSettings

log = logging.getLogger(__name__)


class RouterService:
    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.market = Market(settings.market_seed)
        self.clock = SlotClock(settings.slot_ms)
        self._nc: Client | None = None
        self._worker: ConsumerWorker | None = None

    async def start(self) -> None:
        self._nc = await connect(self.settings, "dexec-router")
        js = self._nc.jetstream()
        await ensure_stream(js, self.settings)
        self._worker = ConsumerWorker(
            js,
            self.settings,
            ROUTER_CONSUMER,
            Stage("router", OrderStatus.ROUTING),
            self.handle,
            concurrency=self.settings.router_concurrency,
        )
        await self._worker.start()

    @property
    def processed(self) -> int:
        """Messages this replica finished: shows how replicas share the work."""
        return self._worker.processed if self._worker else 0

    async def stop(self) -> None:
        if self._worker:
            await self._worker.stop()
        if self._nc:
            await self._nc.drain()

    async def handle(self, event: OrderEvent, delivery: Delivery) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        spec: OrderSpec = event.payload()
        order_id = event.order_id
        await emit(js, order_id, EventType.ROUTING, attempt=delivery.attempt)
        token_in, token_out = resolve_token(spec.token_in), resolve_token(spec.token_out)
        quotes, failed = await gather_quotes(
            self.market,
            self.settings,
            token_in,
            token_out,
            spec.amount_in,
            self.clock.now(),
            self.settings.quote_timeout_seconds,
            key=f"{order_id}:{delivery.attempt}",
        )
        try:
            route = choose_route(
                token_in,
                token_out,
                spec.amount_in,
                spec.slippage_bps,
                quotes,
                failed,
                network_fee_lamports(self.settings.priority_fee_lamports),
            )
        except NoRoute as exc:
            if any(reason == "timeout" or reason.startswith("error") for reason in failed.values()):
                raise TransientError(
                    "QUOTES_UNAVAILABLE", "no venue answered in time", details={"venues": failed}
                ) from exc
            raise PermanentError(
                "NO_ROUTE",
                f"no venue trades {token_in.symbol} for {token_out.symbol}",
                details={"venues": failed},
            ) from exc
        log.info("routed: %s", route.reason, extra={"order_id": order_id})
        await emit(
            js,
            order_id,
            EventType.ROUTED,
            route,
            attempt=delivery.attempt,
            status=OrderStatus.ROUTING,
        )
