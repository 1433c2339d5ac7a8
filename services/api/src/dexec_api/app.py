"""The public HTTP API: submit, read and list orders; health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dexec.auth import Tenants
from dexec.bus.connection import connect, disconnect, ensure_stream
from dexec.bus.recorded_floor import RecordedFloor
from dexec.db.engine import create_engine
from dexec.health import health_router
from dexec.http_metrics import instrument
from dexec.loop_lag import probing_loop_lag
from dexec.orders.states import OrderStatus
from dexec.tracing import FASTAPI_TELEMETRY_OFF
from dexec_api import dashboard_routes
from dexec_api.backpressure import RouterBacklog
from dexec_api.errors import install_error_handlers
from dexec_api.head_requests import HeadAsGet
from dexec_api.idempotency import IdempotencyStore
from dexec_api.intake import OrderIntake, accepted_body
from dexec_api.market_routes import market_router
from dexec_api.order_views import get_order, list_orders
from dexec_api.rate_limit import ClientLimit
from dexec_api.settings import ApiSettings
from dexec_api.tenancy import caller_tenant

# Module level: FastAPI resolves these (string) annotations in the module's namespace.
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Tenant = Annotated[str | None, Depends(caller_tenant)]


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A submit must know whether its order was sent (`dexec_api.commit`): no publish is
        # held for a reconnect that could come long after the client was answered.
        nc = await connect(settings, "dexec-api", hold_while_disconnected=False)
        js = nc.jetstream()
        await ensure_stream(js, settings)
        app.state.nc, app.state.js = nc, js
        app.state.floor = RecordedFloor(js)
        idempotency = await IdempotencyStore.open(
            js, settings.idempotency_ttl_seconds, settings.stream_replicas
        )
        backlog = RouterBacklog(js, settings.max_router_backlog, settings.backlog_refresh_seconds)
        await backlog.start()
        app.state.intake = OrderIntake(settings, js, idempotency, backlog, app.state.limit)
        app.state.engine = create_engine(settings.database_url, settings.db_pool_size)
        try:
            with probing_loop_lag():
                yield
        finally:
            await backlog.stop()
            await disconnect(nc)
            await app.state.engine.dispose()

    app = FastAPI(
        title="dexec",
        summary="Order execution for Solana DEXs: market orders routed to the best venue.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    install_error_handlers(app)
    app.state.settings = settings
    app.state.tenants = Tenants(settings)
    app.state.limit = ClientLimit(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.include_router(dashboard_routes.router)
    app.include_router(market_router(settings))
    app.add_middleware(HeadAsGet)  # before `instrument`: inside its RequestMetrics
    instrument(app, "api")  # request durations by route, and /metrics

    async def submit(
        request: Request, idempotency_key: str | None, tenant: str | None
    ) -> JSONResponse:
        accepted = await app.state.intake.submit(request, idempotency_key, tenant)
        body = accepted_body(accepted, settings.public_ws_url)
        return JSONResponse(body, status_code=202 if accepted.created else 200)

    @app.post("/api/orders/execute", status_code=202)
    async def execute_order(
        request: Request, tenant: Tenant, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Submit a market order. Answers 202 with the order id (200 for a replayed key)."""
        return await submit(request, idempotency_key, tenant)

    @app.post("/api/orders", status_code=202)
    async def create_order(
        request: Request, tenant: Tenant, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Alias of `POST /api/orders/execute`."""
        return await submit(request, idempotency_key, tenant)

    @app.get("/api/orders/{order_id}")
    async def read_order(order_id: str, tenant: Tenant) -> dict[str, Any]:
        """The order's state, route, quotes, transaction and full event history."""
        if order_id == "execute":  # not an id: the submit path, which takes only POST
            raise HTTPException(405)
        state = app.state
        return await get_order(
            state.engine, state.js, state.floor, order_id, tenant, settings.db_read_timeout_seconds
        )

    @app.get("/api/orders")
    async def browse_orders(
        tenant: Tenant,
        status: OrderStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        """Orders, newest first; pass `nextCursor` back as `cursor` for the next page."""
        return await list_orders(
            app.state.engine, tenant, status, limit, cursor, settings.db_read_timeout_seconds
        )

    app.include_router(health_router())
    return app
