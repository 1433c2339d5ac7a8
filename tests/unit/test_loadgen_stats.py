"""The load generator's arithmetic: percentiles, stage latencies, lost/stuck/duplicated orders.

Everything here works on hand-made samples, so each figure the report prints is checked
against a value worked out by hand.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dexec_tools.loadgen.config import RunConfig, plan_workers
from dexec_tools.loadgen.follow import Ledger
from dexec_tools.loadgen.report import exit_status
from dexec_tools.loadgen.samples import OrderSample, Received
from dexec_tools.loadgen.schedule import Amounts
from dexec_tools.loadgen.stats import (
    END_TO_END,
    compute,
    outcome,
    parse_at,
    peak_concurrency,
    percentile,
    stage_latencies,
    summarize,
    timeline,
)
from dexec_tools.loadgen.submit import error_code, retry_after_seconds

T0 = 1_763_712_000.0  # 2025-11-21T08:00:00Z
HAPPY = ("pending", "routing", "routed", "building", "submitted", "confirmed")
STATUS = {"routed": "routing", "retrying": "submitted"}


def at(seconds: float) -> str:
    """An ISO timestamp `seconds` after T0, as the notifier writes it."""
    return datetime.fromtimestamp(T0 + seconds, UTC).isoformat()


def event(
    seq: int, name: str, server: float, received: float | None = None, code: str | None = None
) -> Received:
    """An event the server stamped at T0+server and the client read at T0+received."""
    client = server + 0.002 if received is None else received
    return Received(seq, name, STATUS.get(name, name), at(server), T0 + client, code)


def happy_events(first_seq: int = 10, start: float = 0.0) -> list[Received]:
    """pending at 0 ms, then +10, +20, +30, +40, +50 ms: each stage takes 10 ms."""
    return [event(first_seq + i, name, start + i * 0.010) for i, name in enumerate(HAPPY)]


def accepted_order(index: int, events: list[Received], post: float = 0.005) -> OrderSample:
    order = OrderSample(index, f"run-{index}", order_id=f"order-{index}")
    order.first_post_at = T0 - post
    order.accepted_at = T0
    order.post_seconds = post
    order.events = events
    order.terminal = any(e.status in ("confirmed", "failed") for e in events)
    return order


# --- percentiles ------------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    ordered = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(ordered, 90) == pytest.approx(90.1)
    assert percentile(ordered, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_is_ordered_and_absent_without_values() -> None:
    values = [random.Random(3).expovariate(1.0) for _ in range(1_000)]
    summary = summarize(values)
    assert summary is not None
    assert summary.count == 1_000
    assert summary.p50 <= summary.p90 <= summary.p99 <= summary.max == max(values)
    assert summarize([]) is None


def test_server_timestamps_parse_with_or_without_a_zone() -> None:
    assert parse_at("2025-11-21T08:00:00+00:00") == T0
    assert parse_at("2025-11-21T08:00:00.250000") == T0 + 0.25  # naive: UTC
    assert parse_at("2025-11-21T09:00:00+01:00") == T0


# --- duplicates and order ---------------------------------------------------------------------


def test_a_repeated_seq_is_a_duplicate_and_a_lower_one_is_out_of_order() -> None:
    events = happy_events()
    received = [events[0], events[1], events[1], events[3], events[2], events[4], events[5]]
    line = timeline(received)
    assert line.duplicated == 1
    assert line.out_of_order == 1  # seq 12 after seq 13
    assert [e.seq for e in line.events] == [10, 11, 13, 12, 14, 15]  # each once, as received


def test_a_clean_stream_has_no_anomalies() -> None:
    line = timeline(happy_events())
    assert (line.duplicated, line.out_of_order, line.after_end) == (0, 0, 0)


def test_an_order_that_ends_twice_is_caught_and_fails_the_run() -> None:
    """A second `confirmed` has a seq of its own: not a duplicate, but an order executed twice."""
    events = happy_events()
    again = event(events[-1].seq + 1, "confirmed", 0.060)
    line = timeline([*events, again])
    assert (line.duplicated, line.out_of_order, line.after_end) == (0, 0, 1)

    stats = compute([accepted_order(0, [*events, again])])
    assert (stats.completed, stats.duplicated, stats.after_end) == (1, 0, 1)
    orders = {"requested": 1, "accepted": 1, "completed": 1}
    clean = {"duplicated": 0, "out_of_order": 0, "after_end": 0}
    assert exit_status({"orders": orders, "events": {**clean, "after_end": 1}}) == 1
    assert exit_status({"orders": orders, "events": clean}) == 0


def test_two_orders_given_one_id_are_caught_and_fail_the_run() -> None:
    """Orders from different workers are merged before counting, so an id the API handed to
    two of the run's orders (each with its own key) shows up wherever they were sent from."""
    first, second, third = (accepted_order(i, happy_events(first_seq=10 * i)) for i in (1, 2, 3))
    second.order_id = first.order_id
    stats = compute([first, second, third])
    assert stats.shared_order_ids == 2
    assert compute([first, third]).shared_order_ids == 0
    orders = {"requested": 3, "accepted": 3, "completed": 3}
    clean = {"duplicated": 0, "out_of_order": 0, "after_end": 0}
    assert exit_status({"orders": {**orders, "shared_order_ids": 2}, "events": clean}) == 1
    assert exit_status({"orders": {**orders, "shared_order_ids": 0}, "events": clean}) == 0


# --- stage latencies --------------------------------------------------------------------------


def test_each_stage_is_measured_by_the_server_timestamps() -> None:
    latencies = stage_latencies(timeline(happy_events()))
    assert latencies == pytest.approx(
        {
            "pending_to_routing": 0.010,
            "routing_to_routed": 0.010,
            "routed_to_building": 0.010,
            "building_to_submitted": 0.010,
            "submitted_to_confirmed": 0.010,
            END_TO_END: 0.050,
        }
    )


def test_stages_follow_the_stream_order_even_if_received_out_of_order() -> None:
    events = happy_events()
    shuffled = [events[0], events[2], events[1], events[5], events[3], events[4]]
    assert stage_latencies(timeline(shuffled)) == stage_latencies(timeline(events))


def test_confirmation_is_timed_from_the_submission_that_landed() -> None:
    events = [
        event(1, "pending", 0.000),
        event(2, "routing", 0.010),
        event(3, "routed", 0.020),
        event(4, "building", 0.030),
        event(5, "submitted", 0.040),  # dropped by the chain
        event(6, "retrying", 1.040),
        event(7, "submitted", 1.100),
        event(8, "confirmed", 1.500),
    ]
    latencies = stage_latencies(timeline(events))
    assert latencies["building_to_submitted"] == pytest.approx(0.010)  # the first submission
    assert latencies["submitted_to_confirmed"] == pytest.approx(0.400)  # from the last one
    assert latencies[END_TO_END] == pytest.approx(1.500)


def test_an_order_failed_in_routing_has_only_the_stages_it_reached() -> None:
    events = [
        event(1, "pending", 0.0),
        event(2, "routing", 0.010),
        event(3, "failed", 2.010, code="NO_ROUTE"),
    ]
    latencies = stage_latencies(timeline(events))
    assert latencies == pytest.approx({"pending_to_routing": 0.010, END_TO_END: 2.010})


# --- outcomes ---------------------------------------------------------------------------------


def test_outcomes_rejected_completed_stuck_and_lost() -> None:
    rejected = OrderSample(0, "k0", error="422 INVALID_AMOUNT")
    completed = accepted_order(1, happy_events())
    stuck = accepted_order(2, happy_events()[:4])
    lost = accepted_order(3, [])
    assert [outcome(o) for o in (rejected, completed, stuck, lost)] == [
        "rejected",
        "completed",
        "stuck",
        "lost",
    ]


def test_compute_counts_and_times_a_whole_run() -> None:
    confirmed = accepted_order(0, happy_events(first_seq=10))
    duplicated = accepted_order(1, happy_events(first_seq=20))
    duplicated.events.append(duplicated.events[-1])  # the terminal event delivered twice
    failed = accepted_order(2, [event(30, "pending", 0.0), event(31, "failed", 0.5, code="X")])
    stuck = accepted_order(3, happy_events(first_seq=40)[:3])
    lost = accepted_order(4, [])
    replayed = accepted_order(5, happy_events(first_seq=50))
    replayed.replayed, replayed.retries = True, 2
    refused = OrderSample(6, "k6", first_post_at=T0, error="gave up: 429 RATE_LIMITED")
    refused.retries = 20
    late = accepted_order(7, happy_events(first_seq=60, start=1.0))
    late.accepted_at = T0 + 0.5

    stats = compute([confirmed, duplicated, failed, stuck, lost, replayed, refused, late])

    assert (stats.requested, stats.submitted, stats.accepted) == (8, 8, 7)
    assert stats.rejected == {"gave up: 429 RATE_LIMITED": 1}
    assert (stats.replayed, stats.retries) == (1, 22)
    assert (stats.completed, stats.confirmed, stats.failed) == (5, 4, {"X": 1})
    assert (stats.stuck, stats.lost) == (1, 1)
    assert (stats.duplicated, stats.out_of_order) == (1, 0)
    assert stats.events == 6 + 7 + 2 + 3 + 0 + 6 + 6
    # First POST at T0 - 5 ms; last accept at T0 + 0.5; last terminal read at T0 + 1.052.
    assert stats.accept_window == pytest.approx(0.505)
    assert stats.accept_per_second == pytest.approx(7 / 0.505)
    assert stats.completion_window == pytest.approx(1.057)
    assert stats.completion_per_second == pytest.approx(5 / 1.057)
    assert stats.post_ms is not None and stats.post_ms.p99 == pytest.approx(5.0)
    # Every unique event was read 2 ms after it was stamped.
    assert stats.delivery_ms is not None
    assert stats.delivery_ms.count == stats.events - 1
    assert stats.delivery_ms.p50 == pytest.approx(2.0, abs=0.01)
    assert stats.delivery_ms.max == pytest.approx(2.0, abs=0.01)
    end_to_end = stats.stages_ms[END_TO_END]
    assert end_to_end is not None and end_to_end.count == 5
    assert end_to_end.max == pytest.approx(500.0)  # the failed order
    # Six accepted at T0, in flight together until the first ends (~T0 + 52 ms); the late one
    # comes at T0 + 0.5, after three have ended (stuck and lost never end).
    assert stats.peak_in_flight == 6


def test_post_latency_from_the_schedule_counts_the_wait_for_a_slot_and_retries() -> None:
    on_time = accepted_order(0, happy_events(first_seq=10), post=0.005)
    on_time.due_at = T0 - 0.005  # sent when due; answered 5 ms later
    late = accepted_order(1, happy_events(first_seq=20), post=0.005)
    late.due_at = T0 - 0.205  # waited 200 ms for a free slot, then 5 ms on the wire
    unpaced = accepted_order(2, happy_events(first_seq=30), post=0.005)

    stats = compute([on_time, late, unpaced])

    assert stats.post_ms is not None and stats.post_ms.max == pytest.approx(5.0)
    schedule = stats.post_from_schedule_ms
    assert schedule is not None and schedule.count == 2  # unpaced orders have no schedule
    assert schedule.p50 == pytest.approx(105.0)
    assert schedule.max == pytest.approx(205.0)
    assert compute([unpaced]).post_from_schedule_ms is None


def test_peak_in_flight_follows_accepts_and_ends_in_time_order() -> None:
    assert peak_concurrency([]) == 0
    # a: 0-2, b: 1-3, c: 2-4 (c accepted as a ends), d: 5-6.
    changes = [(0, 1), (2, -1), (1, 1), (3, -1), (2, 1), (4, -1), (5, 1), (6, -1)]
    assert peak_concurrency(changes) == 2


def test_an_empty_run_has_no_rates_and_no_latencies() -> None:
    stats = compute([])
    assert stats.accept_per_second is None and stats.completion_per_second is None
    assert stats.post_ms is None and stats.delivery_ms is None


# --- what a worker records --------------------------------------------------------------------


def message(order_id: str, seq: int, name: str, **data: str) -> bytes:
    return orjson.dumps(
        {
            "orderId": order_id,
            "event": name,
            "status": STATUS.get(name, name),
            "seq": seq,
            "at": at(0),
            "attempt": 1,
            "data": data,
        }
    )


def test_the_ledger_counts_a_terminal_event_once_and_settles_after_submission() -> None:
    progress: list[tuple[int, int]] = []
    ledger = Ledger(lambda accepted, completed: progress.append((accepted, completed)))
    order = OrderSample(0, "k0", order_id="o-1")
    ledger.add(order)
    assert ledger.record(message("o-1", 1, "pending")) == []
    assert ledger.record(message("o-1", 2, "failed", code="NO_ROUTE")) == [order]
    assert ledger.record(message("o-1", 2, "failed", code="NO_ROUTE")) == []  # a duplicate
    assert ledger.completed == 1 and len(order.events) == 3
    assert order.events[1].code == "NO_ROUTE" and order.last_seq == 2
    assert progress == [(1, 0), (1, 1)]
    assert not ledger.all_settled.is_set()  # more orders may still be accepted
    ledger.submission_finished()
    assert ledger.all_settled.is_set()


def test_the_ledger_reads_a_batched_frame_event_by_event() -> None:
    ledger = Ledger(lambda accepted, completed: None)
    orders = [OrderSample(i, f"k{i}", order_id=f"o-{i}") for i in range(2)]
    for order in orders:
        ledger.add(order)
    events = [message("o-0", 1, "pending"), message("o-1", 2, "pending")]
    events += [message("o-0", 3, "confirmed"), message("o-1", 4, "confirmed")]
    frame = b"[" + b",".join(events) + b"]"
    assert ledger.record(frame) == orders
    assert [e.seq for e in orders[0].events] == [1, 3]
    assert [e.seq for e in orders[1].events] == [2, 4]
    assert ledger.record(b"[1]") == [] and ledger.error_frames == {"UNEXPECTED_MESSAGE": 1}


def test_the_ledger_stops_waiting_for_an_order_the_notifier_does_not_know() -> None:
    ledger = Ledger(lambda accepted, completed: None)
    order = OrderSample(0, "k0", order_id="o-1")
    ledger.add(order)
    ledger.submission_finished()
    frame = b'{"error": {"code": "ORDER_NOT_FOUND", "message": "no order o-1", "orderId": "o-1"}}'
    assert ledger.record(frame) == [order]
    assert order.not_found and not order.terminal
    assert ledger.error_frames == {"ORDER_NOT_FOUND": 1}
    assert ledger.all_settled.is_set()
    assert outcome(order) == "lost"


@pytest.mark.parametrize(
    "error",
    [
        {"code": "RATE_LIMITED", "orderIds": ["o-0", "o-1", "elsewhere"], "retryAfter": 2},
        {"code": "BUS_UNAVAILABLE", "orderId": "o-0", "retryAfter": 1},
    ],
)
def test_ids_refused_for_now_are_handed_back_to_subscribe_again(error: dict[str, Any]) -> None:
    ledger = Ledger(lambda accepted, completed: None)
    for i in range(2):
        ledger.add(OrderSample(i, f"k{i}", order_id=f"o-{i}"))

    assert ledger.record(orjson.dumps({"error": error})) == []

    ids = [i for i in error.get("orderIds", [error.get("orderId")]) if i != "elsewhere"]
    assert ledger.take_refused() == (ids, error["retryAfter"])
    assert ledger.take_refused() == ([], 0.0)  # handed back once


# --- the run's inputs -------------------------------------------------------------------------


def config(**overrides: object) -> RunConfig:
    values: dict[str, object] = {
        "api_url": "http://127.0.0.1:8000",
        "ws_url": "ws://127.0.0.1:8001",
        "orders": 1001,
        "rate": 500.0,
        "concurrency": 64,
        "workers": 3,
        "sockets": "multiplexed",
        "sockets_per_worker": 4,
        "subscribe_batch_seconds": 0.01,
        "batched_frames": True,
        "timeout": 60.0,
        "token_in": "SOL",
        "token_out": "USDC",
        "amount": "0.1",
        "amount_decimals": 6,
        "amount_jitter_bps": 100,
        "slippage_bps": None,
        "api_key": None,
        "run_id": "run",
        "max_retries": 20,
        "seed": 1,
        "ws_compression": False,
    }
    return RunConfig(**{**values, **overrides})  # type: ignore[arg-type]


def test_workers_share_the_orders_rate_and_concurrency() -> None:
    plans = plan_workers(config())
    assert [p.orders for p in plans] == [334, 334, 333]
    assert [p.first_index for p in plans] == [0, 334, 668]
    assert sum(p.rate for p in plans) == pytest.approx(500.0)
    assert [p.concurrency for p in plans] == [22, 21, 21]
    assert len(plan_workers(config(orders=2, workers=4))) == 2  # no idle workers
    # More workers than POST slots: one slot each, never more in flight than asked for.
    narrow = plan_workers(config(workers=4, concurrency=2))
    assert [p.concurrency for p in narrow] == [1, 1]
    assert sum(p.orders for p in narrow) == 1001


def test_amounts_vary_exactly_within_the_jitter() -> None:
    amounts = Amounts("0.1", decimals=6, jitter_bps=100, rng=random.Random(1))
    values = [Decimal(amounts.next()) for _ in range(1_000)]
    assert all(Decimal("0.099") <= v <= Decimal("0.101") for v in values)
    assert all(v == v.quantize(Decimal("0.000001")) for v in values)
    assert len(set(values)) > 500  # ~790 expected from 2,001 possible values
    fixed = Amounts("1.50", decimals=6, jitter_bps=0, rng=random.Random(1))
    assert fixed.next() == "1.5"
    for bad in ("-1", "0", "abc", "NaN"):
        with pytest.raises(ValueError):
            Amounts(bad, decimals=6, jitter_bps=100, rng=random.Random(1))


def test_retry_after_and_error_codes_are_read_from_the_answer() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert error_code(b'{"error": {"code": "RATE_LIMITED", "message": "slow down"}}') == (
        "RATE_LIMITED"
    )
    assert error_code(b"<html>bad gateway</html>") == "UNKNOWN"
