"""Retry backoff, event message ids, and the event wire format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from dexec.backoff import doubling_delay
from dexec.orders.events import (
    Execution,
    OrderEvent,
    OrderSpec,
    Retry,
    Submission,
)
from dexec.orders.states import EventType, OrderStatus

ORDER_ID = "0c4f9a52-1b7e-4c8a-9f0d-3e2a6b5c7d19"


@pytest.mark.parametrize(("attempt", "factor"), [(1, 1), (2, 2), (3, 4), (4, 8)])
def test_backoff_doubles_per_attempt(attempt: int, factor: int) -> None:
    assert doubling_delay(attempt, 0.5) == 0.5 * factor


def test_backoff_with_base_one() -> None:
    assert [doubling_delay(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0)]
)
def test_the_delay_doubles_up_to_the_ceiling(attempts: int, delay: float) -> None:
    assert doubling_delay(attempts, 1.0, ceiling=60.0) == delay


def test_thousands_of_attempts_stay_at_the_ceiling() -> None:
    """A give-up time of days allows that many; 2.0 ** 1024 would overflow."""
    assert doubling_delay(1_025, 1.0, ceiling=60.0) == 60.0
    assert doubling_delay(1_000_000, 0.5, ceiling=3_600.0) == 3_600.0


def spec() -> OrderSpec:
    return OrderSpec(
        token_in="SOL",
        token_out="USDC",
        amount_in=1_500_000_000,
        slippage_bps=50,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "event", [EventType.PENDING, EventType.ROUTING, EventType.BUILDING, EventType.FAILED]
)
def test_msg_id_of_once_per_order_events(event: EventType) -> None:
    e = OrderEvent(order_id=ORDER_ID, event=event, status=OrderStatus.PENDING, attempt=3)
    assert e.msg_id == f"{ORDER_ID}:{event.value}"


def test_msg_id_of_pending_event() -> None:
    e = OrderEvent.of(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, spec())
    assert e.msg_id == f"{ORDER_ID}:pending"


def test_msg_id_of_confirmed_has_no_attempt() -> None:
    e = OrderEvent(
        order_id=ORDER_ID, event=EventType.CONFIRMED, status=OrderStatus.CONFIRMED, attempt=2
    )
    assert e.msg_id == f"{ORDER_ID}:confirmed"


@pytest.mark.parametrize("attempt", [1, 2, 5])
def test_msg_id_of_submitted_includes_attempt(attempt: int) -> None:
    submission = Submission(signature="sig", blockhash="bh", last_valid_block_height=10)
    e = OrderEvent.of(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission, attempt)
    assert e.msg_id == f"{ORDER_ID}:submitted:{attempt}"


def test_msg_id_of_retrying_includes_stage_and_attempt() -> None:
    retry = Retry(stage="router", code="RPC_429", reason="rate limited", delay_seconds=1.0)
    e = OrderEvent.of(ORDER_ID, EventType.RETRYING, OrderStatus.ROUTING, retry, attempt=2)
    assert e.msg_id == f"{ORDER_ID}:retrying:router-2"


def test_retries_of_different_stages_have_different_ids() -> None:
    def retrying(stage: str) -> OrderEvent:
        retry = Retry(stage=stage, code="X", reason="x", delay_seconds=1.0)
        return OrderEvent.of(ORDER_ID, EventType.RETRYING, OrderStatus.ROUTING, retry, attempt=1)

    assert retrying("router").msg_id != retrying("executor").msg_id


def test_payload_amounts_are_strings_in_event_data() -> None:
    e = OrderEvent.of(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, spec())
    assert e.data["amountIn"] == "1500000000"
    assert e.data["slippageBps"] == 50
    assert e.data["tokenIn"] == "SOL"


def test_amounts_serialise_as_strings_in_json() -> None:
    big = 18_446_744_073_709_551_615
    execution = Execution(
        tx_hash="sig",
        slot=42,
        in_amount=big,
        out_amount=150_000_000,
        executed_price=Decimal("150.000001"),
        fee_lamports=5_000,
    )
    e = OrderEvent.of(ORDER_ID, EventType.CONFIRMED, OrderStatus.CONFIRMED, execution)
    wire = json.loads(e.to_json())
    assert wire["orderId"] == ORDER_ID
    assert wire["event"] == "confirmed"
    assert wire["data"]["inAmount"] == str(big)
    assert wire["data"]["outAmount"] == "150000000"
    assert wire["data"]["feeLamports"] == "5000"
    assert wire["data"]["executedPrice"] == "150.000001"


def test_spec_amount_serialises_as_string() -> None:
    assert json.loads(spec().model_dump_json(by_alias=True))["amountIn"] == "1500000000"


@pytest.mark.parametrize(
    ("event", "status", "payload"),
    [
        (EventType.PENDING, OrderStatus.PENDING, spec()),
        (
            EventType.CONFIRMED,
            OrderStatus.CONFIRMED,
            Execution(
                tx_hash="sig",
                slot=42,
                in_amount=10**9,
                out_amount=150_000_000,
                executed_price=Decimal("150"),
                fee_lamports=5_000,
            ),
        ),
        (EventType.ROUTING, OrderStatus.ROUTING, None),
    ],
)
def test_event_json_round_trip(event, status, payload) -> None:
    e = OrderEvent.of(ORDER_ID, event, status, payload, attempt=2)
    back = OrderEvent.from_json(e.to_json())
    assert back == e
    assert back.msg_id == e.msg_id
    if payload is not None:
        assert back.payload() == payload


def test_payload_parses_amount_strings_back_to_ints() -> None:
    e = OrderEvent.from_json(
        OrderEvent.of(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, spec()).to_json()
    )
    parsed = e.payload()
    assert isinstance(parsed, OrderSpec)
    assert parsed.amount_in == 1_500_000_000
    assert type(parsed.amount_in) is int
