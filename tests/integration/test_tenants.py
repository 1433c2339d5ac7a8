"""API keys: each order belongs to its key's tenant; other tenants cannot see or watch it."""

from __future__ import annotations

import orjson
import websockets

from dexec.auth import hash_api_key
from tests.support.stack import Stack
from tests.support.waiting import eventually

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}


async def test_orders_belong_to_the_tenant_of_the_key(start) -> None:
    stack: Stack = await start(
        api_keys_enabled=True,
        api_keys={"alice": hash_api_key(ALICE), "bob": hash_api_key(BOB)},
    )
    api = stack.api_url

    assert (await stack.submit(ORDER)).status_code == 401
    wrong = await stack.submit(ORDER, **{"X-API-Key": "guess"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer ")  # how to authenticate

    accepted = await stack.submit(ORDER, **{"X-API-Key": ALICE})
    assert accepted.status_code == 202
    order_id = accepted.json()["orderId"]
    # A bearer token with the whitespace some clients put after the scheme is the same key.
    bearer = {"Authorization": f"Bearer  {ALICE}"}
    mine = await stack.http.get(f"{api}/api/orders/{order_id}", headers=bearer)
    assert mine.status_code == 200

    # Alice watches it (the key as a query parameter, as a browser must send it).
    async with websockets.connect(f"{stack.ws_url}/ws/orders/{order_id}?apiKey={ALICE}") as ws:
        events = [orjson.loads(raw)["event"] async for raw in ws]
    assert events[-1] == "confirmed"

    # The recorder writes in batches: wait until it has written the order's end, not only its start.
    async def recorded() -> bool:
        response = await stack.http.get(f"{api}/api/orders", headers={"X-API-Key": ALICE})
        orders = response.json()["orders"]
        return len(orders) == 1 and orders[0]["status"] == "confirmed"

    await eventually(recorded, what="alice's confirmed order in her listing")
    mine = await stack.http.get(f"{api}/api/orders/{order_id}", headers={"X-API-Key": ALICE})
    assert mine.status_code == 200 and mine.json()["status"] == "confirmed"

    # For Bob, Alice's order does not exist: not readable, not listed, not watchable.
    bearer = {"Authorization": f"Bearer {BOB}"}
    theirs = await stack.http.get(f"{api}/api/orders/{order_id}", headers=bearer)
    assert theirs.status_code == 404
    assert (await stack.http.get(f"{api}/api/orders", headers=bearer)).json()["orders"] == []
    async with websockets.connect(
        f"{stack.ws_url}/ws/orders/{order_id}", additional_headers={"X-API-Key": BOB}
    ) as ws:
        error = orjson.loads(await ws.recv())
        await ws.wait_closed()
    assert error["error"]["code"] == "ORDER_NOT_FOUND" and ws.close_code == 4404
    async with websockets.connect(f"{stack.ws_url}/ws/orders/{order_id}") as ws:
        await ws.wait_closed()
    assert ws.close_code == 4401
