"""Reading orders back: read-your-writes, listing with cursors, health."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from dexec.bus.history import read_order_events
from dexec.bus.publisher import emit
from dexec.orders.states import EventType
from dexec_notifier.recorder import Recorded, record_batch
from dexec_tools.servers import NatsServer
from tests.support.freezing import frozen
from tests.support.stack import Stack, api_alone, stop_nats
from tests.support.waiting import eventually


async def test_get_right_after_post_finds_the_order(start) -> None:
    # Slow realistic latencies: the GET is answered long before the order finishes.
    stack: Stack = await start(latency_mode="realistic")
    response = await stack.submit({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "25"})
    order_id = response.json()["orderId"]

    order = (await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")).json()

    assert order["orderId"] == order_id
    assert order["status"] in {"pending", "routing", "building", "submitted", "confirmed"}
    assert order["tokenIn"] == "USDC" and order["amountIn"] == "25000000"
    assert order["events"][0]["event"] == "pending"


async def test_orders_are_listed_newest_first_with_a_cursor(stack: Stack) -> None:
    ids = []
    for i in range(5):
        response = await stack.submit({"tokenIn": "SOL", "tokenOut": "USDT", "amount": f"{i + 1}"})
        ids.append(response.json()["orderId"])
    await asyncio.gather(*(stack.watch(order_id) for order_id in ids))

    async def all_recorded() -> bool:
        return await stack.scalar("select count(*) from orders where status = 'confirmed'") == 5

    await eventually(all_recorded, what="five confirmed orders in Postgres")

    listed, cursor = [], None
    while True:
        params = {"limit": 2, "status": "confirmed", **({"cursor": cursor} if cursor else {})}
        page = (await stack.http.get(f"{stack.api_url}/api/orders", params=params)).json()
        assert len(page["orders"]) <= 2
        listed += [o["orderId"] for o in page["orders"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert listed == list(reversed(ids))

    none = await stack.http.get(f"{stack.api_url}/api/orders", params={"status": "failed"})
    assert none.json() == {"orders": [], "nextCursor": None}


def forged_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def test_bad_listing_parameters_are_4xx(stack: Stack) -> None:
    cursors = [
        "",  # a client that lost its nextCursor: not the first page again
        "!!",
        forged_cursor("2024-01-01T00:00:00+00:00|\x00"),  # a NUL Postgres cannot compare
        forged_cursor("0001-01-01T00:00:00+05:00|x"),  # year 0 in UTC
        forged_cursor("2024-01-01T00:00:00|x"),  # no time zone: this API never issues one
    ]
    for params in (
        {"status": "lost"},
        {"limit": 0},
        {"limit": 1000},
        *({"cursor": cursor} for cursor in cursors),
    ):
        response = await stack.http.get(f"{stack.api_url}/api/orders", params=params)
        assert response.status_code == 422, params
        assert "error" in response.json()
        if "cursor" in params:
            assert response.json()["error"]["code"] == "INVALID_CURSOR"


async def test_health_and_readiness(stack: Stack) -> None:
    for base in (stack.api_url, stack.ws_url.replace("ws://", "http://")):
        assert (await stack.http.get(f"{base}/healthz")).json() == {"status": "ok"}
        ready = await stack.http.get(f"{base}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "nats": True, "postgres": True}
        metrics = await stack.http.get(f"{base}/metrics/")
        assert metrics.status_code == 200 and "dexec_" in metrics.text


async def test_an_order_postgres_has_behind_the_stream_reads_as_the_stream_has_it(
    start, js: JetStreamContext
) -> None:
    """The recorder wrote `pending`; `routing` is in the stream only: GET shows `routing`.

    A client that saw `routing` on its WebSocket must not read `pending` back. Only the API
    runs, so nothing else moves the order: the recorder's place is taken by one batch written
    here.
    """
    stack: Stack = await start(without=frozenset({"router", "executor", "notifier"}))
    order_id = (await stack.submit({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "25"})).json()[
        "orderId"
    ]
    [pending] = await read_order_events(js, order_id)
    await record_batch(stack.db, [Recorded(pending.seq, pending.event)])
    await emit(js, order_id, EventType.ROUTING)

    order = (await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")).json()

    assert order["status"] == "routing"
    assert [e["event"] for e in order["events"]] == ["pending", "routing"]
    assert order["amountIn"] == "25000000"
    # What Postgres holds is behind: the answer did not come from it.
    assert await stack.scalar("select status from orders where id = :id", id=order_id) == "pending"


@pytest.fixture
async def api_on_own_nats(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Stack, NatsServer]]:
    """Only the API, on a NATS server of the test's own that it may stop."""
    with NatsServer(tmp_path / "nats") as server:
        async with api_alone(server, database_url) as stack:
            yield stack, server


async def test_an_unfinished_order_reads_from_postgres_while_nats_is_down(
    api_on_own_nats: tuple[Stack, NatsServer],
) -> None:
    """The stream would be read for an order Postgres has unfinished; with NATS gone, the row
    is the answer (perhaps behind), not a 500."""
    stack, server = api_on_own_nats
    order_id = (await stack.submit({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "25"})).json()[
        "orderId"
    ]
    nc = await nats.connect(server.url)
    try:
        [pending] = await read_order_events(nc.jetstream(), order_id)
    finally:
        await nc.close()
    await record_batch(stack.db, [Recorded(pending.seq, pending.event)])
    await stop_nats(server, stack)

    response = await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")

    assert response.status_code == 200, response.text
    order = response.json()
    assert (order["orderId"], order["status"], order["amountIn"]) == (
        order_id,
        "pending",
        "25000000",
    )
    assert [e["event"] for e in order["events"]] == ["pending"]


async def test_an_order_not_in_postgres_is_a_503_while_nats_is_down(
    api_on_own_nats: tuple[Stack, NatsServer],
) -> None:
    """Not recorded yet, it may still be in the stream: neither 404 nor a 500, but retry."""
    stack, server = api_on_own_nats
    await stop_nats(server, stack)

    response = await stack.http.get(f"{stack.api_url}/api/orders/{uuid.uuid4()}")

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "BUS_UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"


async def test_readyz_says_not_ready_while_nats_does_not_answer(
    api_on_own_nats: tuple[Stack, NatsServer],
) -> None:
    """NATS frozen (SIGSTOP): the client still thinks itself connected, so only a round trip
    tells. Afterwards the connection must still work: a late answer to the probe that timed
    out must not break it (as a late PONG after `flush(timeout)` would, in nats-py 2.16)."""
    stack, server = api_on_own_nats
    readyz = f"{stack.api_url}/readyz"
    assert (await stack.http.get(readyz)).json()["nats"] is True
    assert server.pid is not None

    with frozen(server.pid):
        frozen_ready = await stack.http.get(readyz)

    assert frozen_ready.status_code == 503
    assert frozen_ready.json() == {"ready": False, "nats": False, "postgres": True}

    async def ready_again() -> bool:
        return (await stack.http.get(readyz)).status_code == 200

    await eventually(ready_again, what="the API ready again once NATS answers")
    accepted = await stack.submit({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "25"})
    assert accepted.status_code == 202, accepted.text
    order = await stack.http.get(f"{stack.api_url}/api/orders/{accepted.json()['orderId']}")
    assert order.status_code == 200 and order.json()["events"][0]["event"] == "pending"
