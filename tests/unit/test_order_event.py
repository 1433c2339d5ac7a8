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
