"""Folding events into an `OrderView`, and mapping views to `orders` rows and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from dexec.db.projection import row_values, view_from_row
from dexec.orders.events import (
    Execution,
    Failure,
    OrderEvent,
    OrderSpec,
    Retry,
    Route,
    RouteLeg,
    Submission,
    VenueQuote,
)
from dexec.orders.projection import OrderView, fold
from dexec.orders.states import EventType, OrderStatus

ORDER_ID = "7b0f5c3e-4d1a-4f4e-9a53-0d6c1b2e8f11"
SOL_MINT = "So11111111111111111111111111111111111111112"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _at(event: OrderEvent, seconds: int) -> OrderEvent:
    return event.model_copy(update={"at": T0 + timedelta(seconds=seconds)})


def spec() -> OrderSpec:
    return OrderSpec(
        token_in="SOL",
        token_out="USDC",
        amount_in=1_500_000_000,
        slippage_bps=50,
        tenant="acme",
        created_at=T0,
    )


def route() -> Route:
    quote = VenueQuote(
        venue="raydium",
        pool="a" * 32,
        in_amount=1_500_000_000,
        out_amount=224_100_000,
        fee_amount=3_750_000,
        price_impact_pct=Decimal("0.0281"),
        context_slot=1000,
    )
    other = quote.model_copy(
        update={"venue": "meteora", "pool": "b" * 32, "out_amount": 223_900_000}
    )
    return Route(
        input_mint=SOL_MINT,
        output_mint=USDC_MINT,
        in_amount=1_500_000_000,
        out_amount=224_100_000,
        other_amount_threshold=222_979_500,
        price_impact_pct=Decimal("0.0281"),
        route_plan=[
            RouteLeg(
                venue="raydium",
                pool="a" * 32,
                in_amount=1_500_000_000,
                out_amount=224_100_000,
                fee_amount=3_750_000,
                percent=100,
            )
        ],
        context_slot=1000,
        network_fee_lamports=5_000,
        quotes=[quote, other],
        reason="raydium gives 224.1 USDC, 8 bps more than meteora",
    )


def submission(n: int) -> Submission:
    return Submission(signature=f"sig{n}", blockhash=f"hash{n}", last_valid_block_height=2000 + n)


def execution() -> Execution:
    return Execution(
        tx_hash="sig2",
        slot=1005,
        in_amount=1_500_000_000,
        out_amount=224_050_000,
        executed_price=Decimal("149.3666"),
        fee_lamports=15_000,
    )


def retry(attempt: int) -> Retry:
    return Retry(
        stage="executor",
        code="BLOCKHASH_EXPIRED",
        reason=f"blockhash expired on attempt {attempt}",
        delay_seconds=0.5,
    )


def lifecycle() -> list[tuple[int, OrderEvent]]:
    """A realistic confirmed order whose first submission expired and was retried."""
    o = OrderEvent.of
    events = [
        o(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, spec()),
        o(ORDER_ID, EventType.ROUTING, OrderStatus.ROUTING),
        o(ORDER_ID, EventType.ROUTED, OrderStatus.ROUTING, route()),
        o(ORDER_ID, EventType.BUILDING, OrderStatus.BUILDING),
        o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(1), attempt=1),
        o(ORDER_ID, EventType.RETRYING, OrderStatus.SUBMITTED, retry(1), attempt=1),
        o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(2), attempt=2),
        o(ORDER_ID, EventType.CONFIRMED, OrderStatus.CONFIRMED, execution(), attempt=2),
    ]
    return [(seq, _at(event, seq)) for seq, event in enumerate(events, start=1)]


def failed_lifecycle() -> list[tuple[int, OrderEvent]]:
    o = OrderEvent.of
    failure = Failure(code="SLIPPAGE_EXCEEDED", reason="0x1771", attempts=1)
    events = [
        o(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, spec()),
        o(ORDER_ID, EventType.ROUTING, OrderStatus.ROUTING),
        o(ORDER_ID, EventType.ROUTED, OrderStatus.ROUTING, route()),
        o(ORDER_ID, EventType.BUILDING, OrderStatus.BUILDING),
        o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(1)),
        o(ORDER_ID, EventType.FAILED, OrderStatus.FAILED, failure),
    ]
    return [(seq, _at(event, seq)) for seq, event in enumerate(events, start=1)]


def summary(view: OrderView) -> tuple[object, ...]:
    return (
        view.status,
        view.spec,
        view.route,
        view.submission,
        view.execution,
        view.failure,
        view.attempts,
        view.last_seq,
        view.created_at,
        view.updated_at,
    )


def test_fresh_view_is_pending_with_one_attempt() -> None:
    view = OrderView(ORDER_ID)
    assert view.status == OrderStatus.PENDING
    assert view.attempts == 1
    assert view.last_seq == 0


def test_full_lifecycle_in_order_confirms_with_all_details() -> None:
    view = fold(ORDER_ID, lifecycle())
    assert view.status == OrderStatus.CONFIRMED
    assert view.spec is not None and view.spec["tokenIn"] == "SOL"
    assert view.route is not None and view.route["outAmount"] == "224100000"
    assert view.submission == {**submission(2).model_dump(mode="json", by_alias=True), "attempt": 2}
    assert view.execution is not None and view.execution["txHash"] == "sig2"
    assert view.failure is None
    assert view.attempts == 2
    assert view.last_seq == 8
    assert view.created_at == T0 + timedelta(seconds=1)
    assert view.updated_at == T0 + timedelta(seconds=8)


def test_routed_keeps_routing_and_adds_the_route() -> None:
    view = fold(ORDER_ID, lifecycle()[:3])
    assert view.status == OrderStatus.ROUTING
    assert view.route == route().model_dump(mode="json", by_alias=True)


def test_failed_lifecycle_records_failure() -> None:
    view = fold(ORDER_ID, failed_lifecycle())
    assert view.status == OrderStatus.FAILED
    assert view.failure is not None and view.failure["code"] == "SLIPPAGE_EXCEEDED"
    assert view.execution is None


def test_an_ended_order_keeps_its_end_when_a_second_end_arrives() -> None:
    o = OrderEvent.of
    late_failure = Failure(code="QUOTES_UNAVAILABLE", reason="no venue answered", attempts=3)
    confirmed = fold(ORDER_ID, lifecycle())
    confirmed.apply(9, o(ORDER_ID, EventType.FAILED, OrderStatus.FAILED, late_failure))
    assert confirmed.status == OrderStatus.CONFIRMED
    assert confirmed.failure is None
    assert confirmed.execution is not None

    failed = fold(ORDER_ID, failed_lifecycle())
    failed.apply(7, o(ORDER_ID, EventType.CONFIRMED, OrderStatus.CONFIRMED, execution()))
    assert failed.status == OrderStatus.FAILED
    assert failed.execution is None
    assert failed.failure is not None and failed.failure["code"] == "SLIPPAGE_EXCEEDED"


def test_applying_every_event_twice_changes_nothing() -> None:
    events = lifecycle()
    once = fold(ORDER_ID, events)
    twice = fold(ORDER_ID, events + events)
    assert summary(twice) == summary(once)


def test_late_older_submission_does_not_replace_newer_one() -> None:
    o = OrderEvent.of
    view = OrderView(ORDER_ID)
    view.apply(7, o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(2), attempt=2))
    view.apply(5, o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(1), attempt=1))
    assert view.submission is not None
    assert view.submission["signature"] == "sig2"
    assert view.submission["attempt"] == 2
    assert view.last_seq == 7


def test_newer_submission_replaces_older_one() -> None:
    o = OrderEvent.of
    view = OrderView(ORDER_ID)
    view.apply(5, o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(1), attempt=1))
    view.apply(7, o(ORDER_ID, EventType.SUBMITTED, OrderStatus.SUBMITTED, submission(2), attempt=2))
    assert view.submission is not None and view.submission["signature"] == "sig2"


def test_retrying_attempt_n_makes_attempts_n_plus_one() -> None:
    view = OrderView(ORDER_ID)
    view.apply(1, OrderEvent.of(ORDER_ID, EventType.RETRYING, OrderStatus.ROUTING, retry(3), 3))
    assert view.attempts == 4
    assert view.last_retry is not None and view.last_retry["code"] == "BLOCKHASH_EXPIRED"
    assert view.status == OrderStatus.PENDING


def test_older_retrying_does_not_lower_attempts() -> None:
    view = OrderView(ORDER_ID)
    view.apply(2, OrderEvent.of(ORDER_ID, EventType.RETRYING, OrderStatus.ROUTING, retry(2), 2))
    view.apply(1, OrderEvent.of(ORDER_ID, EventType.RETRYING, OrderStatus.ROUTING, retry(1), 1))
    assert view.attempts == 3


def test_late_routing_after_building_keeps_building() -> None:
    events = lifecycle()
    view = fold(ORDER_ID, [events[0], events[3], events[1]])
    assert view.status == OrderStatus.BUILDING


def test_first_spec_and_route_are_kept() -> None:
    o = OrderEvent.of
    other_spec = spec().model_copy(update={"amount_in": 1})
    view = fold(
        ORDER_ID,
        [
            (1, o(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, spec())),
            (2, o(ORDER_ID, EventType.PENDING, OrderStatus.PENDING, other_spec)),
        ],
    )
    assert view.spec is not None and view.spec["amountIn"] == "1500000000"


@st.composite
def shuffled_with_duplicates(draw: st.DrawFn, events: list[tuple[int, OrderEvent]]):
    extra = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    return draw(st.permutations(events + extra))


@given(shuffled_with_duplicates(lifecycle()))
def test_confirmed_lifecycle_is_order_and_duplicate_insensitive(
    events: list[tuple[int, OrderEvent]],
) -> None:
    expected = fold(ORDER_ID, lifecycle())
    view = fold(ORDER_ID, events)
    assert summary(view) == summary(expected)
    assert view.status == OrderStatus.CONFIRMED


@given(shuffled_with_duplicates(failed_lifecycle()))
def test_failed_lifecycle_is_order_and_duplicate_insensitive(
    events: list[tuple[int, OrderEvent]],
) -> None:
    expected = fold(ORDER_ID, failed_lifecycle())
    assert summary(fold(ORDER_ID, events)) == summary(expected)


def skewed_lifecycle() -> list[tuple[int, OrderEvent]]:
    """The router's and executor's clocks a few seconds behind the API's."""
    pending, *later = lifecycle()
    return [pending, *((seq, _at(event, seq - 10)) for seq, event in later)]


@given(shuffled_with_duplicates(skewed_lifecycle()))
def test_an_order_is_created_when_its_pending_is_whatever_the_other_clocks_say(
    events: list[tuple[int, OrderEvent]],
) -> None:
    pending_at = skewed_lifecycle()[0][1].at
    assert fold(ORDER_ID, events).created_at == pending_at


def test_before_its_pending_an_order_is_dated_by_its_earliest_event() -> None:
    _, routing, routed, building, *_ = skewed_lifecycle()
    view = fold(ORDER_ID, [building, routed, routing])
    assert view.spec is None
    assert view.created_at == routing[1].at


def test_row_values_copies_spec_columns() -> None:
    values = row_values(fold(ORDER_ID, lifecycle()))
    assert values["id"] == ORDER_ID
    assert values["status"] == "confirmed"
    assert values["tenant"] == "acme"
    assert values["token_in"] == "SOL"
    assert values["token_out"] == "USDC"
    assert values["amount_in"] == Decimal(1_500_000_000)
    assert isinstance(values["amount_in"], Decimal)
    assert values["slippage_bps"] == 50


def test_row_values_without_spec_leaves_spec_columns_empty() -> None:
    values = row_values(OrderView(ORDER_ID, OrderStatus.ROUTING))
    assert values["status"] == "routing"
    assert values["token_in"] is None
    assert values["amount_in"] is None
    assert values["slippage_bps"] is None


def test_row_round_trip_gives_equal_view() -> None:
    view = fold(ORDER_ID, lifecycle())
    values = row_values(view)
    assert isinstance(values, dict)
    assert view_from_row(values) == view


@given(shuffled_with_duplicates(failed_lifecycle()))
def test_row_round_trip_for_any_partial_fold(events: list[tuple[int, OrderEvent]]) -> None:
    view = fold(ORDER_ID, events[: len(events) // 2])
    assert view_from_row(row_values(view)) == view


def test_an_executor_retry_is_the_latest_whatever_the_routers_attempts() -> None:
    """Each stage counts its own attempts: the router's third does not hide the executor's
    first retry, in whichever order the two arrive."""
    routing = Retry(stage="router", code="QUOTES_UNAVAILABLE", reason="timeout", delay_seconds=2)
    o = OrderEvent.of
    router_retry = (2, o(ORDER_ID, EventType.RETRYING, OrderStatus.ROUTING, routing, 2))
    executor_retry = (5, o(ORDER_ID, EventType.RETRYING, OrderStatus.SUBMITTED, retry(1), 1))
    for events in ([router_retry, executor_retry], [executor_retry, router_retry]):
        view = fold(ORDER_ID, events)
        assert view.last_retry is not None and view.last_retry["stage"] == "executor"
        assert view.attempts == 2
