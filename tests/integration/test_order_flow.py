"""One order through the four real services, watched over the WebSocket and read back."""

from __future__ import annotations

from tests.support.stack import Stack
from tests.support.waiting import eventually

SOL_TO_USDC = {"type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"}
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]


async def test_order_is_confirmed_over_the_websocket_and_recorded(stack: Stack) -> None:
    response = await stack.submit(SOL_TO_USDC)
    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]
    assert response.json()["status"] == "pending"

    messages = await stack.watch(order_id)

    assert [m["event"] for m in messages] == LIFECYCLE
    assert [m["status"] for m in messages] == [
        "pending",
        "routing",
        "routing",
        "building",
        "submitted",
        "confirmed",
    ]
    assert all(m["orderId"] == order_id for m in messages)
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    routed = messages[2]["data"]
    assert {q["venue"] for q in routed["quotes"]} == {"raydium", "meteora"}
    assert routed["reason"]
    confirmed = messages[-1]["data"]
    assert confirmed["txHash"] == messages[4]["data"]["signature"]
    assert int(confirmed["outAmount"]) >= int(routed["otherAmountThreshold"])

    async def recorded() -> bool:
        return await stack.scalar("select status from orders where id = :id", id=order_id) == (
            "confirmed"
        )

    await eventually(recorded, what="the order recorded as confirmed")
    events = await stack.rows(
        "select event from order_events where order_id = :id order by seq", id=order_id
    )
    assert [e.event for e in events] == LIFECYCLE

    order = (await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")).json()
    assert order["status"] == "confirmed"
    assert order["amountIn"] == "1500000000" and order["amount"] == "1.500000000"
    assert order["execution"]["txHash"] == confirmed["txHash"]
    assert [e["event"] for e in order["events"]] == LIFECYCLE
