"""Health of the HTTP services: alive, and ready when NATS and Postgres both answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dexec.db.bounded import DatabaseUnavailable, read_within

# How long each readiness check may take; they run at the same time. A server that does not
# answer at all (stopped, overloaded) must make /readyz say "not ready", not hang it: an
# answer within this leaves room under the chart's readinessProbe timeoutSeconds (3 s).
CHECK_TIMEOUT_SECONDS = 2.0


async def _select_one(conn: AsyncConnection) -> None:
    await conn.execute(text("select 1"))


async def postgres_answers(engine: AsyncEngine, timeout: float = CHECK_TIMEOUT_SECONDS) -> bool:
    try:
        await read_within(engine, _select_one, timeout)
    except DatabaseUnavailable:
        return False
    return True


def health_router() -> APIRouter:
    """`/healthz` and `/readyz`; the app keeps its NATS client and engine in `app.state`."""
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        checks = {"nats": state.nc.is_connected, "postgres": await postgres_answers(state.engine)}
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, 200 if ready else 503)

    return router
