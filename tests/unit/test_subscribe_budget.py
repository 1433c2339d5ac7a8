"""A client's subscription budget: a burst at once, then a steady rate; one per tenant."""

from __future__ import annotations

from dexec_notifier.budget import ClientBudgets, SubscribeBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_new_socket_may_take_a_whole_burst_then_only_what_the_rate_refills() -> None:
    clock = Clock()
    budget = SubscribeBudget(rate=10, burst=100, clock=clock)

    assert budget.take(100) == 100
    assert budget.take(1) == 0
    clock.now += 0.5
    assert budget.take(20) == 5  # part of a command goes through
    assert budget.seconds_until(15) == 2


def test_an_idle_socket_refills_up_to_the_burst_only() -> None:
    clock = Clock()
    budget = SubscribeBudget(rate=10, burst=100, clock=clock)
    budget.take(100)

    clock.now += 3600

    assert budget.take(1_000) == 100


def test_the_wait_is_at_least_a_second_and_bounded_by_the_burst() -> None:
    clock = Clock()
    budget = SubscribeBudget(rate=1_000, burst=2_000, clock=clock)
    budget.take(2_000)

    assert budget.seconds_until(1) == 1
    assert budget.seconds_until(10_000) == 2  # never more than a full burst's refill


def test_a_tenants_sockets_share_one_budget_and_anonymous_ones_do_not() -> None:
    budgets = ClientBudgets(rate=10, burst=100, clock=Clock())

    assert budgets.of("alice").take(100) == 100
    assert budgets.of("alice").take(1) == 0  # another socket of hers: nothing left
    assert budgets.of("bob").take(100) == 100
    assert budgets.of(None).take(100) == 100
    assert budgets.of(None).take(100) == 100
