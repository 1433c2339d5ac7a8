"""An order event read from the bus must carry what its message id is made of, and the
executor's view of a `routed` event must be the router's swap."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dexec.market.chain import SlotClock
from dexec.market.market import Market
from dexec.market.tokens import resolve_token
from dexec.orders.events import OrderEvent, SwapPlan
from dexec.orders.states import EventType, OrderStatus
from dexec_router.planner import RoutePlanner
from dexec_router.settings import RouterSettings


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


async def test_the_swap_plan_of_a_routed_event_is_the_routes_own() -> None:
    """The executor reads a `routed` event's `SwapPlan` alone: it must carry every field the
    router set for the swap, and none of the quotes it skips."""
    settings = RouterSettings(latency_mode="zero")
    planner = RoutePlanner(Market.from_settings(settings), settings, SlotClock(settings.slot_ms))
    route = await planner.plan(resolve_token("SOL"), resolve_token("USDC"), 10**9, 50, key="k")
    raw = OrderEvent.of("o-1", EventType.ROUTED, OrderStatus.ROUTING, route).to_json()
    plan = SwapPlan.model_validate(OrderEvent.from_json(raw).data)
    assert type(plan) is SwapPlan and not hasattr(plan, "quotes")
    assert plan.model_dump() == route.model_dump(include=set(SwapPlan.model_fields))
    assert plan.route_plan and plan.compute_unit_limit == route.compute_unit_limit
