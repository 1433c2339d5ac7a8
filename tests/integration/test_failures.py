"""Retries with backoff for transient failures; permanent failures end `failed` at once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.chain import landed_outcomes
from tests.support.markets import sol_usdc_only
from tests.support.stack import Stack, start_executor
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "2"}
BACKOFF = 0.2


def at(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["at"])


async def recorded_failure(stack: Stack, order_id: str) -> Any:
    async def failed_row() -> Any:
        rows = await stack.rows(
            "select status, failure, attempts from orders where id = :id and status = 'failed'",
            id=order_id,
        )
        return rows[0] if rows else None

    return await eventually(failed_row, what="the failure recorded in Postgres")


async def test_transient_failure_is_retried_with_backoff_then_succeeds(start) -> None:
    stack: Stack = await start(
        chain_rate_limit_first_attempts=1, retry_backoff_base_seconds=BACKOFF
    )
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    messages = await stack.watch(order_id)

    events = [m["event"] for m in messages]
    assert events == [
        "pending",
        "routing",
        "routed",
        "building",
        "submitted",
        "retrying",
        "submitted",
        "confirmed",
    ]
    retry = messages[5]
    assert retry["attempt"] == 1
    assert retry["data"]["code"] == "RPC_RATE_LIMITED"
    assert retry["data"]["stage"] == "executor"
    assert retry["data"]["delaySeconds"] == BACKOFF
    # The second attempt came no sooner than the backoff allowed.
    assert (at(messages[6]) - at(retry)).total_seconds() >= BACKOFF
    # The 429 meant the transaction never reached the chain, so the same signed
    # transaction was sent again, submitted again for the second attempt before it was: one
    # signature, and it is the confirmed one.
    resubmitted = messages[6]
    assert resubmitted["attempt"] == 2
    assert resubmitted["data"]["signature"] == messages[4]["data"]["signature"]
    assert messages[-1]["data"]["txHash"] == messages[4]["data"]["signature"]

    async def confirmed_with_attempts() -> Any:
        rows = await stack.rows(
            "select attempts, last_retry from orders where id = :id and status = 'confirmed'",
            id=order_id,
        )
        return rows[0] if rows else None

    row = await eventually(confirmed_with_attempts, what="the confirmed order recorded")
    assert row.attempts == 2
    assert row.last_retry["code"] == "RPC_RATE_LIMITED"


async def test_retries_stop_after_three_attempts_with_doubling_backoff(start) -> None:
    stack: Stack = await start(
        chain_rate_limit_first_attempts=10, retry_backoff_base_seconds=BACKOFF
    )
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    messages = await stack.watch(order_id)

    retries = [m for m in messages if m["event"] == "retrying"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert [r["data"]["delaySeconds"] for r in retries] == [BACKOFF, 2 * BACKOFF]
    final = messages[-1]
    assert final["event"] == "failed" and final["status"] == "failed"
    # Each retry waited the delay it announced: the redelivery really doubles.
    assert (at(retries[1]) - at(retries[0])).total_seconds() >= BACKOFF
    assert (at(final) - at(retries[1])).total_seconds() >= 2 * BACKOFF
    assert final["data"]["code"] == "RPC_RATE_LIMITED"
    assert final["data"]["attempts"] == 3

    row = await recorded_failure(stack, order_id)
    assert row.failure["code"] == "RPC_RATE_LIMITED"
    assert row.failure["attempts"] == 3


async def test_a_node_that_stays_behind_fails_the_order_without_it_landing(start) -> None:
    stack: Stack = await start(chain_node_behind_rate=1, retry_backoff_base_seconds=BACKOFF)
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    messages = await stack.watch(order_id)

    retries = [m for m in messages if m["event"] == "retrying"]
    assert [(r["attempt"], r["data"]["code"]) for r in retries] == [
        (1, "NODE_BEHIND"),
        (2, "NODE_BEHIND"),
    ]
    final = messages[-1]
    assert final["event"] == "failed"
    assert (final["data"]["code"], final["data"]["attempts"]) == ("NODE_BEHIND", 3)
    assert not [o for o in await landed_outcomes(stack.nats_url) if o.order_id == order_id]


async def test_permanent_chain_failure_fails_at_once_and_is_persisted(start) -> None:
    stack: Stack = await start(chain_insufficient_funds_rate=1)
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    messages = await stack.watch(order_id)

    assert "retrying" not in [m["event"] for m in messages]
    final = messages[-1]
    assert final["event"] == "failed"
    assert final["data"]["code"] == "INSUFFICIENT_FUNDS"
    assert final["data"]["attempts"] == 1

    row = await recorded_failure(stack, order_id)
    assert row.failure["code"] == "INSUFFICIENT_FUNDS"
    assert row.failure["reason"]
    order = (await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")).json()
    assert order["status"] == "failed"
    assert order["failure"]["code"] == "INSUFFICIENT_FUNDS"


async def test_pair_without_a_route_fails_with_no_route(start, tmp_path: Path) -> None:
    stack: Stack = await start(market_file=str(sol_usdc_only(tmp_path)))
    response = await stack.submit({"tokenIn": "BONK", "tokenOut": "JUP", "amount": "1000"})
    order_id = response.json()["orderId"]

    messages = await stack.watch(order_id)

    assert [m["event"] for m in messages] == ["pending", "routing", "failed"]
    failure = messages[-1]["data"]
    assert failure["code"] == "NO_ROUTE"
    assert failure["details"]["stage"] == "router"
    assert set(failure["details"]["venues"]) == {"raydium", "meteora"}
    row = await recorded_failure(stack, order_id)
    assert row.failure["code"] == "NO_ROUTE"


async def test_slippage_is_checked_again_at_execution(start) -> None:
    # The simulated chain lands every swap 1% worse than the quote (a front-run).
    stack: Stack = await start(chain_frontrun_bps=100)

    tight = (await stack.submit({**ORDER, "slippageBps": 50})).json()["orderId"]
    loose = (await stack.submit({**ORDER, "slippageBps": 200})).json()["orderId"]

    failed = (await stack.watch(tight))[-1]
    assert failed["event"] == "failed"
    assert failed["data"]["code"] == "SLIPPAGE_EXCEEDED"
    assert failed["data"]["attempts"] == 1
    assert failed["data"]["details"]["venueError"].split()[0] in {"0x1e", "0x1773"}

    confirmed = (await stack.watch(loose))[-1]
    assert confirmed["event"] == "confirmed"
    order = (await stack.http.get(f"{stack.api_url}/api/orders/{loose}")).json()
    out, quoted = int(confirmed["data"]["outAmount"]), int(order["route"]["outAmount"])
    assert int(order["route"]["otherAmountThreshold"]) <= out < quoted


async def test_dropped_transaction_is_signed_again_only_after_its_blockhash_expires(start) -> None:
    stack: Stack = await start(
        chain_drop_first_attempts=1,
        blockhash_valid_slots=5,
        slot_ms=50,
        retry_backoff_base_seconds=BACKOFF,
    )
    order_id = (await stack.submit(ORDER)).json()["orderId"]

    messages = await stack.watch(order_id)

    assert [m["event"] for m in messages] == [
        "pending",
        "routing",
        "routed",
        "building",
        "submitted",
        "retrying",
        "submitted",
        "confirmed",
    ]
    first, second = messages[4], messages[6]
    assert messages[5]["data"]["code"] == "BLOCKHASH_EXPIRED"
    assert first["data"]["signature"] != second["data"]["signature"]
    # The new signature uses a blockhash from after the first one expired.
    assert second["data"]["lastValidBlockHeight"] > first["data"]["lastValidBlockHeight"]
    assert messages[-1]["data"]["txHash"] == second["data"]["signature"]
    landed = [o for o in await landed_outcomes(stack.nats_url) if o.order_id == order_id]
    assert [o.signature for o in landed] == [second["data"]["signature"]]


async def test_a_retry_after_the_transaction_was_written_ahead_reports_it_submitted(
    start, nats_url: str, database_url: str
) -> None:
    """An unexpected error once `submitted` is in the stream (the executor's wait for the
    confirmation breaks): the `retrying` clients see keeps the order `submitted`, never back to
    `building`, and the redelivery resumes the same transaction to its confirmation."""
    stack: Stack = await start(without=frozenset({"executor"}), retry_backoff_base_seconds=BACKOFF)
    executor = await start_executor(nats_url, database_url, retry_backoff_base_seconds=BACKOFF)
    chain = executor.chain
    assert chain is not None
    wait_confirmed = chain.wait_confirmed
    broken = []

    async def breaks_once(*args: Any) -> Any:
        if not broken:
            broken.append(True)
            raise RuntimeError("the RPC node reset the connection")
        return await wait_confirmed(*args)

    chain.wait_confirmed = breaks_once  # type: ignore[method-assign]
    try:
        order_id = (await stack.submit(ORDER)).json()["orderId"]
        messages = await stack.watch(order_id)
    finally:
        await executor.stop()

    steps = [(m["event"], m["status"]) for m in messages]
    retry = steps.index(("retrying", "submitted"))
    assert steps[retry - 1] == ("submitted", "submitted")
    assert messages[retry]["data"]["code"] == "INTERNAL_ERROR"
    assert steps[-1] == ("confirmed", "confirmed")
    signatures = {m["data"]["signature"] for m in messages if m["event"] == "submitted"}
    assert len(signatures) == 1 and messages[-1]["data"]["txHash"] in signatures
