"""The order state machine: the one place where statuses and transitions are defined.

Everything else asks this module (`is_forward`, `status_after`, `is_terminal`) instead of
comparing status strings, so replays and out-of-order deliveries cannot move an order back.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "pending"
    ROUTING = "routing"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class EventType(StrEnum):
    PENDING = "pending"
    ROUTING = "routing"
    ROUTED = "routed"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    RETRYING = "retrying"


class OrderStage(StrEnum):
    """The stages that work on an order and retry it, in the order it passes them (a
    `retrying` event names its stage; each stage counts its own attempts)."""

    ROUTER = "router"
    EXECUTOR = "executor"


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.ROUTING, OrderStatus.FAILED}),
    OrderStatus.ROUTING: frozenset({OrderStatus.BUILDING, OrderStatus.FAILED}),
    OrderStatus.BUILDING: frozenset({OrderStatus.SUBMITTED, OrderStatus.FAILED}),
    OrderStatus.SUBMITTED: frozenset({OrderStatus.CONFIRMED, OrderStatus.FAILED}),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.FAILED: frozenset(),
}

# The status an event moves the order to; None means the event keeps the status and only adds
# details (`routed` adds the route, `retrying` the attempt and reason).
EVENT_STATUS: dict[EventType, OrderStatus | None] = {
    EventType.PENDING: OrderStatus.PENDING,
    EventType.ROUTING: OrderStatus.ROUTING,
    EventType.ROUTED: None,
    EventType.BUILDING: OrderStatus.BUILDING,
    EventType.SUBMITTED: OrderStatus.SUBMITTED,
    EventType.CONFIRMED: OrderStatus.CONFIRMED,
    EventType.FAILED: OrderStatus.FAILED,
    EventType.RETRYING: None,
}


def _reachable(start: OrderStatus) -> frozenset[OrderStatus]:
    seen: set[OrderStatus] = set()
    frontier = list(TRANSITIONS[start])
    while frontier:
        status = frontier.pop()
        if status not in seen:
            seen.add(status)
            frontier.extend(TRANSITIONS[status])
    return frozenset(seen)


# "Forward" is reachability, not a single step: a projection that missed `routing` because it
# arrived late must still accept `building`, and must then ignore the late `routing`.
REACHABLE: dict[OrderStatus, frozenset[OrderStatus]] = {s: _reachable(s) for s in OrderStatus}


def is_terminal(status: OrderStatus) -> bool:
    return not TRANSITIONS[status]


TERMINAL_STATUSES = frozenset(status for status in OrderStatus if is_terminal(status))
# The events that end an order (`confirmed`, `failed`).
TERMINAL_EVENTS = frozenset(
    event for event, status in EVENT_STATUS.items() if status in TERMINAL_STATUSES
)


def is_forward(current: OrderStatus, new: OrderStatus) -> bool:
    return new in REACHABLE[current]


def status_after(current: OrderStatus, event: EventType) -> OrderStatus:
    """The status after applying `event`; unchanged when the event does not move it forward."""
    target = EVENT_STATUS[event]
    if target is None or not is_forward(current, target):
        return current
    return target


# The events of an order confirmed at its first attempt, in the order they are published.
FIRST_TRY_EVENTS = (
    EventType.PENDING,
    EventType.ROUTING,
    EventType.ROUTED,
    EventType.BUILDING,
    EventType.SUBMITTED,
    EventType.CONFIRMED,
)


def with_statuses(events: Iterable[EventType]) -> list[tuple[EventType, OrderStatus]]:
    """Each event with the order's status once it is applied, starting from `pending`."""
    status, steps = OrderStatus.PENDING, []
    for event in events:
        status = status_after(status, event)
        steps.append((event, status))
    return steps
