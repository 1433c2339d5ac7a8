"""The notifier's ASGI app: WebSocket streams, health, metrics; runs the recorder alongside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query, WebSocket
from fastapi.exceptions import WebSocketRequestValidationError

from dexec.auth import Tenants
from dexec.bus.connection import connect, disconnect, ensure_stream
from dexec.db.engine import create_engine
from dexec.health import health_router
from dexec.http_metrics import instrument
from dexec.loop_lag import probing_loop_lag
from dexec.tracing import FASTAPI_TELEMETRY_OFF
from dexec_notifier.budget import ClientBudgets
from dexec_notifier.live import LiveHub
from dexec_notifier.recorder import Recorder
from dexec_notifier.settings import NotifierSettings
from dexec_notifier.sockets import (
    CLOSE_BAD_REQUEST,
    CLOSE_UNAUTHORIZED,
    StreamSession,
    bad_request_frame,
    error_frame,
)
from dexec_notifier.webhooks import WebhookDispatcher, retire_webhook_consumer

# `?afterSeq=N`: resume after the last stream sequence a client saw (module level: FastAPI
# resolves string annotations in the module's namespace).
AfterSeq = Annotated[int, Query(ge=0)]
OrderId = Annotated[str | None, Query(max_length=64)]
# `?batch=true`: each event frame is a JSON array of the events ready at once.
Batch = Annotated[bool, Query()]


async def reject_bad_query(ws: WebSocket, exc: Exception) -> None:
    """Bad query parameters: an error frame and close 4400, as the rest of the WebSocket API
    answers (FastAPI's default closes before accepting, which clients see as a bare 403)."""
    assert isinstance(exc, WebSocketRequestValidationError)
    await ws.accept()
    await ws.send_text(bad_request_frame(exc.errors(), skip=("query",)))
    await ws.close(CLOSE_BAD_REQUEST)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    hub = LiveHub(settings.ws_backfill_cache_bytes, settings.ws_backfill_cache_ttl_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connect(settings, "dexec-notifier")
        js = nc.jetstream()
        await ensure_stream(js, settings)
        engine = create_engine(settings.database_url, settings.db_pool_size)
        await hub.start(js)
        await retire_webhook_consumer(js)
        webhooks = WebhookDispatcher(engine, settings, js)
        await webhooks.start()
        recorder = Recorder(js, engine, settings, on_webhooks_queued=webhooks.wake)
        await recorder.start()
        app.state.nc, app.state.js, app.state.engine = nc, js, engine
        app.state.recorder, app.state.hub = recorder, hub
        try:
            with probing_loop_lag():
                yield
        finally:
            await recorder.stop()
            await webhooks.stop()
            await hub.stop()
            await disconnect(nc)
            await engine.dispose()

    app = FastAPI(title="dexec notifier", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY_OFF)
    instrument(app, "notifier")  # request durations by route, and /metrics
    app.add_exception_handler(WebSocketRequestValidationError, reject_bad_query)

    tenants = Tenants(settings)
    budgets = ClientBudgets(
        settings.ws_subscribe_rate, max(settings.ws_subscribe_burst, settings.ws_subscribe_rate)
    )

    async def watch(ws: WebSocket, order_id: str | None, after_seq: int, batch: bool) -> None:
        tenant = None
        if tenants.enabled:
            # Browsers cannot set headers on a WebSocket: the key may come as ?apiKey=.
            tenant = tenants.resolve(ws.query_params.get("apiKey") or ws.headers.get("x-api-key"))
            if tenant is None:
                await ws.accept()
                await ws.send_text(error_frame("UNAUTHORIZED", "a valid API key is required"))
                await ws.close(CLOSE_UNAUTHORIZED)
                return
        session = StreamSession(
            ws,
            app.state.js,
            hub,
            queue_limit=settings.ws_queue_limit,
            send_timeout=settings.ws_send_timeout_seconds,
            budget=budgets.of(tenant),
            tenant=tenant,
            batch=batch,
        )
        if order_id:
            await session.watch_one(order_id, after_seq, settings.ws_close_on_terminal)
        else:
            await session.watch_many()

    @app.websocket("/ws/orders/{order_id}")
    async def ws_order(
        ws: WebSocket, order_id: str, afterSeq: AfterSeq = 0, batch: Batch = False
    ) -> None:
        """One order's events: the backfill, then live, then close 1000 at its end."""
        await watch(ws, order_id, afterSeq, batch)

    @app.websocket("/ws")
    async def ws_any(
        ws: WebSocket, orderId: OrderId = None, afterSeq: AfterSeq = 0, batch: Batch = False
    ) -> None:
        """With `orderId`, as /ws/orders/{id}; without, a socket driven by subscribe commands."""
        await watch(ws, orderId, afterSeq, batch)

    @app.websocket("/api/orders/execute")
    async def ws_execute(
        ws: WebSocket, orderId: OrderId = None, afterSeq: AfterSeq = 0, batch: Batch = False
    ) -> None:
        """Where clients of the original assignment connect (the ingress sends upgrades here)."""
        await watch(ws, orderId, afterSeq, batch)

    app.include_router(health_router())
    return app
