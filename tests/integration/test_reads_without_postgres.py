"""Reading orders while Postgres refuses the API or does not answer at all.

GET of one order falls back to the order's events in the stream; a listing, which only
Postgres can serve, is `503 DATABASE_UNAVAILABLE`; submits go on, and `/readyz` stays ready
(its traffic needs NATS only) while it says Postgres does not answer. Each
answer comes while Postgres is still down: a request that hung instead would run into the
HTTP client's timeout and fail the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from dexec.auth import hash_api_key
from dexec_tools.servers import PostgresServer
from tests.support.backends import PostgresBackend
from tests.support.freezing import frozen
from tests.support.stack import Stack, start_stack
from tests.support.waiting import eventually

API_ONLY = frozenset({"router", "executor", "notifier"})
ORDER = {"tokenIn": "USDC", "tokenOut": "SOL", "amount": "25"}


@contextlib.asynccontextmanager
async def refusing(postgres: PostgresBackend, database_url: str) -> AsyncIterator[None]:
    """The test's database refuses connections, and those open are closed, as in a Postgres
    restart; allowed again at the end. Only this test's database is touched."""
    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres.dsn(postgres.admin_db))
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def assert_reads_without_postgres(stack: Stack, order_id: str) -> None:
    """What the API answers while Postgres cannot serve it (the order is in the stream only)."""
    api = stack.api_url
    order, listing, unknown, ready, submitted = await asyncio.gather(
        stack.http.get(f"{api}/api/orders/{order_id}"),
        stack.http.get(f"{api}/api/orders", params={"limit": 1}),
        stack.http.get(f"{api}/api/orders/{uuid.uuid4()}"),
        stack.http.get(f"{api}/readyz"),
        stack.submit(ORDER),
    )

    assert order.status_code == 200, order.text
    body = order.json()
    assert (body["orderId"], body["status"], body["amountIn"]) == (order_id, "pending", "25000000")
    assert [e["event"] for e in body["events"]] == ["pending"]

    assert listing.status_code == 503, listing.text
    assert listing.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert listing.headers["Retry-After"] == "1"

    # Not in the stream: it might be an order older than the stream's retention, in Postgres
    # only, so not a 404.
    assert unknown.status_code == 503, unknown.text
    assert unknown.json()["error"]["code"] == "DATABASE_UNAVAILABLE"

    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "nats": True, "postgres": False}
    assert submitted.status_code == 202, submitted.text


async def assert_postgres_back(stack: Stack) -> None:
    async def listing_answers() -> bool:
        response = await stack.http.get(f"{stack.api_url}/api/orders")
        return response.status_code == 200

    async def postgres_answers() -> bool:
        return (await stack.http.get(f"{stack.api_url}/readyz")).json()["postgres"] is True

    await eventually(listing_answers, what="the listing answered from Postgres again")
    await eventually(postgres_answers, what="/readyz seeing Postgres again")


async def test_reads_while_postgres_refuses_connections(
    start, migrated_postgres: PostgresBackend, database_url: str
) -> None:
    stack: Stack = await start(without=API_ONLY)
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    assert (await stack.http.get(f"{stack.api_url}/api/orders")).status_code == 200

    async with refusing(migrated_postgres, database_url):
        await assert_reads_without_postgres(stack, order_id)

    await assert_postgres_back(stack)


async def test_the_stream_fallback_keeps_tenants_apart(
    start, migrated_postgres: PostgresBackend, database_url: str
) -> None:
    """Answered from the stream, another tenant's order still does not exist for the caller."""
    alice, bob = "alice-key-0123456789", "bob-key-0123456789"
    stack: Stack = await start(
        without=API_ONLY,
        api_keys_enabled=True,
        api_keys={"alice": hash_api_key(alice), "bob": hash_api_key(bob)},
    )
    order_id = (await stack.submit(ORDER, **{"X-API-Key": alice})).json()["orderId"]
    url = f"{stack.api_url}/api/orders/{order_id}"

    async with refusing(migrated_postgres, database_url):
        mine = await stack.http.get(url, headers={"X-API-Key": alice})
        theirs = await stack.http.get(url, headers={"X-API-Key": bob})

    assert mine.status_code == 200 and mine.json()["orderId"] == order_id
    assert theirs.status_code == 404, theirs.text
    assert theirs.json()["error"]["code"] == "ORDER_NOT_FOUND"


async def test_reads_while_postgres_does_not_answer(
    nats_url: str, own_postgres: PostgresServer
) -> None:
    """Postgres frozen (SIGSTOP) with the API's pooled connection open: nothing errors,
    nothing answers; the API gives up on it after its read timeout."""
    stack = await start_stack(
        nats_url, own_postgres.url(), without=API_ONLY, db_read_timeout_seconds=0.5
    )
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        # A connection in the API's pool, which the freeze leaves open and silent.
        assert (await stack.http.get(f"{stack.api_url}/api/orders")).status_code == 200
        assert own_postgres.pid is not None

        with frozen(own_postgres.pid):
            await assert_reads_without_postgres(stack, order_id)

        await assert_postgres_back(stack)
    finally:
        await stack.stop()
