"""A webhook POST starts only while the rest of its delivery's lease can hold it."""

from __future__ import annotations

from datetime import UTC, datetime

from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStatus
from dexec_notifier.webhooks import LEASE_MARGIN_SECONDS, Delivery


def delivery(lease_ends: float) -> Delivery:
    event = OrderEvent(order_id="o-1", event=EventType.PENDING, status=OrderStatus.PENDING)
    token = datetime(2025, 1, 1, tzinfo=UTC)  # the claim's lease_until (unused here)
    url = "https://hooks.example/x"
    return Delivery("o-1:pending", 1, url, "hooks.example", 1, None, event, lease_ends, token)


def test_a_post_that_would_end_inside_the_lease_may_start() -> None:
    d = delivery(lease_ends=100.0)
    assert d.may_post(now=100.0 - 5.0 - LEASE_MARGIN_SECONDS, post_seconds=5.0)


def test_a_post_that_could_outlive_the_lease_does_not_start() -> None:
    """Slow checks before it (a stalled Postgres or NATS) used up the lease: another replica
    may claim the event once it runs out, and the two POSTs could overlap."""
    d = delivery(lease_ends=100.0)
    assert not d.may_post(now=100.0 - 5.0, post_seconds=5.0)
    assert not d.may_post(now=101.0, post_seconds=5.0)
