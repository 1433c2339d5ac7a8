"""Client frames rendered from raw JSON are exactly those rendered from the parsed event."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from dexec.bus.history import StoredEvent
from dexec.orders.events import Execution, Failure, OrderEvent, OrderSpec
from dexec.orders.states import EventType, OrderStatus
from dexec_notifier.client_events import ClientEvent

SPEC = OrderSpec(
    token_in="SOL",
    token_out="USDC",
    amount_in=1_500_000_000,
    slippage_bps=50,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    tenant="desk-1",
)
EVENTS = [
    OrderEvent.of("o-1", EventType.PENDING, OrderStatus.PENDING, SPEC),
    OrderEvent.of("o-1", EventType.ROUTING, OrderStatus.ROUTING, attempt=2),
    OrderEvent.of(
        "o-1",
        EventType.CONFIRMED,
        OrderStatus.CONFIRMED,
        Execution(
            tx_hash="5x",
            slot=9,
            in_amount=1_500_000_000,
            out_amount=225_000_000,
            executed_price=Decimal("150.000000001"),
            fee_lamports=5_000,
        ),
    ),
    OrderEvent.of(
        "o-1",
        EventType.FAILED,
        OrderStatus.FAILED,
        Failure(code="SLIPPAGE_EXCEEDED", reason="é 中", attempts=3, details={"x": None}),
    ),
    # A whole second: pydantic leaves out the fraction, as isoformat does.
    OrderEvent(
        order_id="o-2",
        event=EventType.BUILDING,
        status=OrderStatus.BUILDING,
        at=datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: str(e.event))
def test_raw_and_parsed_renderings_agree(event: OrderEvent) -> None:
    parsed = ClientEvent.of(StoredEvent(41, event))
    raw = ClientEvent.from_json(41, event.to_json())
    assert raw == parsed
    assert orjson.loads(raw.text)["seq"] == 41


def test_terminal_and_tenant_come_from_the_event() -> None:
    rendered = [ClientEvent.from_json(n, e.to_json()) for n, e in enumerate(EVENTS)]
    assert [r.terminal for r in rendered] == [False, False, True, True, False]
    assert rendered[0].tenant == "desk-1"
    assert rendered[1].tenant is None


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"orderId": "o"}', b'{"data": 1}'])
def test_malformed_json_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        ClientEvent.from_json(1, raw)
