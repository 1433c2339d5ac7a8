"""An order event read from the bus must carry what its message id is made of."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dexec.orders.events import OrderEvent


def test_a_retrying_event_without_its_stage_is_not_an_order_event() -> None:
    raw = b'{"orderId": "o-1", "event": "retrying", "status": "routing", "attempt": 2}'
    with pytest.raises(ValidationError, match="names its stage"):
        OrderEvent.from_json(raw)


def test_a_retrying_event_with_its_stage_has_a_message_id() -> None:
    raw = (
        b'{"orderId": "o-1", "event": "retrying", "status": "routing", "attempt": 2,'
        b' "data": {"stage": "router", "code": "X", "reason": "r", "delaySeconds": 1}}'
    )
    assert OrderEvent.from_json(raw).msg_id == "o-1:retrying:router-2"


def test_an_event_whose_time_has_no_zone_is_not_an_order_event() -> None:
    """The fold compares events' times: a naive one beside an aware one would fail there."""
    raw = (
        b'{"orderId": "o-1", "event": "routing", "status": "routing", "at": "2025-01-01T00:00:00"}'
    )
    with pytest.raises(ValidationError, match="timezone"):
        OrderEvent.from_json(raw)
    aware = raw.replace(b'00:00"', b'00:00Z"')
    assert OrderEvent.from_json(aware).at.tzinfo is not None
