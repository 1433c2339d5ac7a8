"""Readiness: the services that serve HTTP are ready when NATS and Postgres both answer."""

from __future__ import annotations

from nats.aio.client import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def postgres_answers(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    except Exception:
        return False
    return True


async def readiness(nc: Client, engine: AsyncEngine) -> tuple[dict[str, bool], int]:
    """The body and HTTP status of `/readyz`."""
    checks = {"nats": nc.is_connected, "postgres": await postgres_answers(engine)}
    ready = all(checks.values())
    return {"ready": ready, **checks}, 200 if ready else 503
