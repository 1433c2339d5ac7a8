"""Health of the HTTP services: alive, and ready when NATS and Postgres both answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def postgres_answers(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception:
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
