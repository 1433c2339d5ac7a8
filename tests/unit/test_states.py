"""The order state machine: transition table, forward reachability and `status_after`."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dexec.orders.states import (
    EVENT_STATUS,
    FIRST_TRY_EVENTS,
    TRANSITIONS,
    EventType,
    OrderStatus,
    is_forward,
    is_terminal,
    status_after,
    with_statuses,
)

S = OrderStatus
E = EventType

HAPPY_PATH = [S.PENDING, S.ROUTING, S.BUILDING, S.SUBMITTED, S.CONFIRMED]
NON_TERMINAL = [S.PENDING, S.ROUTING, S.BUILDING, S.SUBMITTED]
TERMINAL = [S.CONFIRMED, S.FAILED]

RANK = {
    S.PENDING: 0,
    S.ROUTING: 1,
    S.BUILDING: 2,
    S.SUBMITTED: 3,
    S.CONFIRMED: 4,
    S.FAILED: 4,
}


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)


def test_every_event_has_a_status_entry() -> None:
    assert set(EVENT_STATUS) == set(EventType)


@pytest.mark.parametrize(("current", "nxt"), list(pairwise(HAPPY_PATH)))
def test_happy_path_steps_are_allowed(current: OrderStatus, nxt: OrderStatus) -> None:
    assert nxt in TRANSITIONS[current]


def test_table_is_exactly_next_step_plus_failed() -> None:
    for current, nxt in pairwise(HAPPY_PATH):
        assert TRANSITIONS[current] == frozenset({nxt, S.FAILED})


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_failed_is_reachable_from_every_non_terminal_state(status: OrderStatus) -> None:
    assert S.FAILED in TRANSITIONS[status]
    assert is_forward(status, S.FAILED)
    assert not is_terminal(status)


@pytest.mark.parametrize("status", TERMINAL)
def test_terminal_states_have_no_transitions(status: OrderStatus) -> None:
    assert TRANSITIONS[status] == frozenset()
    assert is_terminal(status)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.PENDING, S.ROUTING),
        (S.PENDING, S.BUILDING),
        (S.PENDING, S.SUBMITTED),
        (S.PENDING, S.CONFIRMED),
        (S.ROUTING, S.SUBMITTED),
        (S.BUILDING, S.CONFIRMED),
        (S.SUBMITTED, S.FAILED),
    ],
)
def test_is_forward_follows_reachability_not_single_steps(
    current: OrderStatus, new: OrderStatus
) -> None:
    assert is_forward(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.BUILDING, S.ROUTING),
        (S.SUBMITTED, S.PENDING),
        (S.ROUTING, S.PENDING),
        (S.PENDING, S.PENDING),
        (S.BUILDING, S.BUILDING),
    ],
)
def test_backwards_or_same_status_is_not_forward(current: OrderStatus, new: OrderStatus) -> None:
    assert not is_forward(current, new)


@pytest.mark.parametrize("terminal", TERMINAL)
@pytest.mark.parametrize("new", list(OrderStatus))
def test_nothing_is_forward_from_a_terminal_state(terminal: OrderStatus, new: OrderStatus) -> None:
    assert not is_forward(terminal, new)


def test_confirmed_and_failed_are_not_forward_of_each_other() -> None:
    assert not is_forward(S.CONFIRMED, S.FAILED)
    assert not is_forward(S.FAILED, S.CONFIRMED)


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [
        (S.PENDING, E.ROUTING, S.ROUTING),
        (S.ROUTING, E.BUILDING, S.BUILDING),
        (S.BUILDING, E.SUBMITTED, S.SUBMITTED),
        (S.SUBMITTED, E.CONFIRMED, S.CONFIRMED),
        (S.ROUTING, E.FAILED, S.FAILED),
        (S.PENDING, E.BUILDING, S.BUILDING),
    ],
)
def test_status_after_moves_forward(
    current: OrderStatus, event: EventType, expected: OrderStatus
) -> None:
    assert status_after(current, event) == expected


@pytest.mark.parametrize("status", list(OrderStatus))
@pytest.mark.parametrize("event", [E.ROUTED, E.RETRYING])
def test_routed_and_retrying_keep_the_status(status: OrderStatus, event: EventType) -> None:
    assert status_after(status, event) == status


def test_late_routing_after_building_is_ignored() -> None:
    assert status_after(S.BUILDING, E.ROUTING) == S.BUILDING


def test_late_pending_is_ignored() -> None:
    assert status_after(S.ROUTING, E.PENDING) == S.ROUTING
    assert status_after(S.PENDING, E.PENDING) == S.PENDING


def test_repeated_event_keeps_the_status() -> None:
    assert status_after(S.SUBMITTED, E.SUBMITTED) == S.SUBMITTED


@pytest.mark.parametrize("terminal", TERMINAL)
@pytest.mark.parametrize("event", list(EventType))
def test_terminal_status_never_changes(terminal: OrderStatus, event: EventType) -> None:
    assert status_after(terminal, event) == terminal


@given(st.lists(st.sampled_from(list(EventType)), max_size=40))
def test_status_never_moves_backwards_and_terminal_sticks(events: list[EventType]) -> None:
    status = S.PENDING
    terminal_at: OrderStatus | None = None
    for event in events:
        new = status_after(status, event)
        assert RANK[new] >= RANK[status]
        if terminal_at is not None:
            assert new == terminal_at
        elif is_terminal(new):
            terminal_at = new
        status = new


def test_a_first_try_order_moves_through_every_status_and_routed_keeps_routing() -> None:
    steps = with_statuses(FIRST_TRY_EVENTS)
    assert [event for event, _ in steps] == list(FIRST_TRY_EVENTS)
    assert [status for _, status in steps] == [
        S.PENDING, S.ROUTING, S.ROUTING, S.BUILDING, S.SUBMITTED, S.CONFIRMED
    ]  # fmt: skip
