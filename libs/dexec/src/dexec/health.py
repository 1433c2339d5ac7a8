"""Health of the HTTP services: alive, and ready when NATS answers (Postgres is reported)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client
from nats.errors import Error as NatsError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dexec.db.bounded import DatabaseUnavailable, read_within

# How long each readiness check may take; they run at the same time. A server that does not
# answer at all (stopped, overloaded) must make /readyz say "not ready", not hang it: an
# answer within this leaves room under the chart's readinessProbe timeoutSeconds (3 s).
CHECK_TIMEOUT_SECONDS = 2.0


async def nats_answers(nc: Client, timeout: float = CHECK_TIMEOUT_SECONDS) -> bool:
    """A round trip to JetStream (`$JS.API.INFO`, one small request), within `timeout`.

    `nc.is_connected` alone is the client's own view: a server that stopped answering keeps
    it true until nats-py's pings notice, minutes later, while every publish times out.

    Not `nc.flush(timeout)` nor `nc.rtt(timeout)`: in nats-py 2.16 their timeout cancels the
    PONG's future but leaves it queued, and the PONG that comes once the server is back then
    raises in the connection's read loop, which ends it: the service would stop receiving.
    A request's late reply is dropped instead. Not a core request to a subject nobody
    subscribes to (answered "no responders") either: a wildcard subscriber (`nats sub '>'`)
    would take it and never answer. JetStream answers whoever else listens, and it is what
    every service needs.
    """
    if not nc.is_connected:
        return False  # reconnecting: no need to wait for the timeout
    try:
        async with asyncio.timeout(timeout):
            await nc.jetstream(timeout=timeout).account_info()
    except (NatsError, TimeoutError):
        return False
    return True


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
        nats, postgres = await asyncio.gather(
            nats_answers(state.nc), postgres_answers(state.engine)
        )
        # Ready means able to take traffic, which needs NATS (every submit is a publish, every
        # live event comes from it) and not Postgres: submits never touch it, a single order
        # is read from the stream without it, and a Postgres failover must not take every
        # replica out of the load balancer at once. Its answer is reported all the same.
        return JSONResponse(
            {"ready": nats, "nats": nats, "postgres": postgres}, 200 if nats else 503
        )

    return router
