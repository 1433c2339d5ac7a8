"""The notifier's ASGI app: WebSocket streams, health, metrics; runs the recorder alongside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query, WebSocket
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from dexec.bus.connection import connect, ensure_stream
from dexec.db.engine import create_engine
from dexec.health import readiness
from dexec_notifier.live import LiveHub
from dexec_notifier.recorder import Recorder
from dexec_notifier.settings import NotifierSettings
from dexec_notifier.sockets import CLOSE_BAD_REQUEST, OrderStream, send_error

# `?afterSeq=N`: resume after the last stream sequence a client saw (module level: FastAPI
# resolves string annotations in the module's namespace).
AfterSeq = Annotated[int, Query(ge=0)]


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    hub = LiveHub()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connect(settings, "dexec-notifier")
        js = nc.jetstream()
        await ensure_stream(js, settings)
        engine = create_engine(settings.database_url, settings.db_pool_size)
        await hub.start(js)
        recorder = Recorder(js, engine, settings)
        await recorder.start()
        app.state.nc, app.state.js, app.state.engine = nc, js, engine
        app.state.recorder = recorder
        try:
            yield
        finally:
            await recorder.stop()
            await hub.stop()
            await nc.drain()
            await engine.dispose()

    app = FastAPI(title="dexec notifier", lifespan=lifespan)
    app.mount("/metrics", make_asgi_app())

    async def stream(ws: WebSocket, order_id: str, after_seq: int) -> None:
        stream = OrderStream(ws, app.state.js, hub, settings.ws_queue_limit, after_seq)
        await stream.run(order_id)

    @app.websocket("/ws/orders/{order_id}")
    async def ws_order(ws: WebSocket, order_id: str, afterSeq: AfterSeq = 0) -> None:
        await stream(ws, order_id, afterSeq)

    @app.websocket("/ws")
    async def ws_query(ws: WebSocket, orderId: str | None = None, afterSeq: AfterSeq = 0) -> None:
        if not orderId:
            await ws.accept()
            message = "query parameter orderId is required"
            await send_error(ws, "BAD_REQUEST", message, CLOSE_BAD_REQUEST)
            return
        await stream(ws, orderId, afterSeq)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body, status = await readiness(app.state.nc, app.state.engine)
        return JSONResponse(body, status)

    return app
