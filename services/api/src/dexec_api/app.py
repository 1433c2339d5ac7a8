"""The public HTTP API: submit, read and list orders; health and metrics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from nats.js.errors import NotFoundError
from prometheus_client import make_asgi_app

from dexec.bus.connection import connect, ensure_stream
from dexec.bus.publisher import emit
from dexec.bus.subjects import STREAM, event_subject
from dexec.db.engine import create_engine
from dexec.health import readiness
from dexec.orders.events import OrderSpec
from dexec.orders.states import EventType, OrderStatus
from dexec_api.body import read_json_body
from dexec_api.errors import ApiError, install_error_handlers
from dexec_api.idempotency import IdempotencyConflict, IdempotencyStore
from dexec_api.metrics import ORDERS_ACCEPTED, ORDERS_REJECTED
from dexec_api.order_request import parse_json_object, parse_order
from dexec_api.order_views import get_order, list_orders
from dexec_api.settings import ApiSettings

# Module level: FastAPI resolves these (string) annotations in the module's namespace.
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connect(settings, "dexec-api")
        js = nc.jetstream()
        await ensure_stream(js, settings)
        app.state.nc, app.state.js = nc, js
        app.state.idempotency = await IdempotencyStore.open(js, settings.idempotency_ttl_seconds)
        app.state.engine = create_engine(settings.database_url, settings.db_pool_size)
        try:
            yield
        finally:
            await nc.drain()
            await app.state.engine.dispose()

    app = FastAPI(
        title="dexec",
        summary="Order execution for Solana DEXs: market orders routed to the best venue.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.mount("/metrics", make_asgi_app())

    async def submit(request: Request, idempotency_key: str | None) -> JSONResponse:
        try:
            raw = await read_json_body(request, settings.max_body_bytes)
            spec = parse_order(parse_json_object(raw), settings.default_slippage_bps, None)
        except ApiError as exc:
            ORDERS_REJECTED.labels(exc.code.lower()).inc()
            raise
        order_id = str(uuid.uuid4())
        created = True
        if idempotency_key is not None:
            key = idempotency_key.strip()
            if not key or len(key) > 255:
                raise ApiError(422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key: 1 to 255 chars")
            spec = spec.model_copy(update={"idempotency_key": key})
            try:
                claim = await app.state.idempotency.claim(spec.tenant, key, spec, order_id)
            except IdempotencyConflict as exc:
                ORDERS_REJECTED.labels("idempotency_conflict").inc()
                raise ApiError(
                    422,
                    "IDEMPOTENCY_KEY_REUSED",
                    "this Idempotency-Key was used with a different order",
                ) from exc
            order_id, created = claim.order_id, claim.created
        await commit_pending(order_id, spec, created)
        if created:
            ORDERS_ACCEPTED.inc()
        body = {
            "orderId": order_id,
            "status": str(OrderStatus.PENDING),
            "tokenIn": spec.token_in,
            "tokenOut": spec.token_out,
            "amountIn": str(spec.amount_in),
            "slippageBps": spec.slippage_bps,
            "links": {
                "self": f"/api/orders/{order_id}",
                "stream": f"{settings.public_ws_url}/ws/orders/{order_id}",
            },
        }
        return JSONResponse(body, status_code=202 if created else 200)

    async def commit_pending(order_id: str, spec: OrderSpec, created: bool) -> None:
        """Publish `pending`: the stream's ack is the commit point of the order.

        A replayed key publishes too, in case the first request died between its claim and its
        publish; within the duplicate window the server drops the copy, and past it the
        order's `pending` is looked up first so it is never published twice.
        """
        if not created:
            try:
                subject = event_subject(EventType.PENDING, order_id)
                await app.state.js.get_last_msg(STREAM, subject, direct=True)
                return
            except NotFoundError:
                pass
        await emit(app.state.js, order_id, EventType.PENDING, spec)

    @app.post("/api/orders/execute", status_code=202)
    async def execute_order(request: Request, idempotency_key: IdempotencyKey = None):
        """Submit a market order. Answers 202 with the order id (200 for a replayed key)."""
        return await submit(request, idempotency_key)

    @app.post("/api/orders", status_code=202)
    async def create_order(request: Request, idempotency_key: IdempotencyKey = None):
        """Alias of `POST /api/orders/execute`."""
        return await submit(request, idempotency_key)

    @app.get("/api/orders/{order_id}")
    async def read_order(order_id: str) -> dict[str, Any]:
        """The order's state, route, quotes, transaction and full event history."""
        return await get_order(app.state.engine, app.state.js, order_id)

    @app.get("/api/orders")
    async def browse_orders(
        status: OrderStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        """Orders, newest first; pass `nextCursor` back as `cursor` for the next page."""
        return await list_orders(app.state.engine, status, limit, cursor)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body, status = await readiness(app.state.nc, app.state.engine)
        return JSONResponse(body, status)

    return app
