"""Every figure of the report, computed from the workers' raw samples (pure functions).

Definitions:
- an order is *completed* once its terminal event (confirmed or failed) reached the client;
  *stuck* if some of its events arrived but not the terminal one by the end of the run; *lost*
  if it was accepted and not a single event arrived.
- an event is *duplicated* when the client gets the same (order, seq) again, and *out of
  order* when its seq is below one already received for that order.
- stage latencies come from the events' own server timestamps (`at`), so they measure the
  engine, not the client; `submitted → confirmed` starts at the last submission (the one that
  landed, after any retries). Delivery latency is the client's receive time minus `at`: the
  same machine's clock on both sides.
- POST latency is the round trip of the attempt that was answered; in a paced run, POST from
  its scheduled time runs from when the schedule said to send the order to the accepting
  answer, so time spent waiting for a free slot or retrying counts, as a client keeping the
  rate would see it (no coordinated omission).
- a *shared order id* is an id the API gave to more than one of the run's orders (each has its
  own Idempotency-Key and amount, so each must get its own order).
- accept throughput is accepted orders over the span from the first POST to the last accept;
  completion throughput is completed orders from the first POST to the last terminal event.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dexec_tools.loadgen.samples import OrderSample, Received

TERMINAL_STATUSES = frozenset({"confirmed", "failed"})
SUBMITTED_TO_CONFIRMED = "submitted_to_confirmed"
END_TO_END = "pending_to_terminal"
# (name, from event, to event), in the order of an order's life.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("pending_to_routing", "pending", "routing"),
    ("routing_to_routed", "routing", "routed"),
    ("routed_to_building", "routed", "building"),
    ("building_to_submitted", "building", "submitted"),
    (SUBMITTED_TO_CONFIRMED, "submitted", "confirmed"),
)
STAGE_NAMES = (*(name for name, _, _ in STAGES), END_TO_END)


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted values, interpolating between closest ranks.

    The same definition as numpy's default ("linear"): rank p/100 * (n - 1), counted from 0.
    """
    if not ordered:
        raise ValueError("no values")
    rank = p / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    def as_json(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "p50": round(self.p50, 3),
            "p90": round(self.p90, 3),
            "p99": round(self.p99, 3),
            "max": round(self.max, 3),
        }


def summarize(values: Iterable[float]) -> Summary | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return Summary(
        count=len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


def parse_at(at: str) -> float:
    """A server timestamp (ISO 8601) as seconds since the epoch; naive means UTC."""
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class Timeline:
    """One order's events as received, each once, with their server times parsed."""

    events: list[Received]  # first receipt of each seq, in arrival order
    at: list[float]  # parse_at of each event's `at`
    duplicated: int
    out_of_order: int
    # Events with a seq past the order's end (a second `confirmed`: an order executed twice).
    after_end: int = 0


def timeline(events: Sequence[Received], parse: Callable[[str], float] = parse_at) -> Timeline:
    seen: set[int] = set()
    unique: list[Received] = []
    highest = 0
    duplicated = out_of_order = 0
    for event in events:
        if event.seq in seen:
            duplicated += 1
            continue
        seen.add(event.seq)
        if event.seq < highest:
            out_of_order += 1
        else:
            highest = event.seq
        unique.append(event)
    end = min((e.seq for e in unique if e.status in TERMINAL_STATUSES), default=None)
    after_end = 0 if end is None else sum(e.seq > end for e in unique)
    return Timeline(unique, [parse(e.at) for e in unique], duplicated, out_of_order, after_end)


def stage_latencies(line: Timeline) -> dict[str, float]:
    """Seconds spent in each stage this order went through, by the server's clock."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    terminal: float | None = None
    # Stream order (seq), whatever order the client received them in.
    for event, at in sorted(zip(line.events, line.at, strict=True), key=lambda pair: pair[0].seq):
        first.setdefault(event.event, at)
        last[event.event] = at
        if event.status in TERMINAL_STATUSES and terminal is None:
            terminal = at
    latencies: dict[str, float] = {}
    for name, start, end in STAGES:
        if start in first and end in first:
            # A retried submission: the confirmation answers the last one, not the first.
            began = last[start] if name == SUBMITTED_TO_CONFIRMED else first[start]
            latencies[name] = first[end] - began
    if "pending" in first and terminal is not None:
        latencies[END_TO_END] = terminal - first["pending"]
    return latencies


def outcome(order: OrderSample) -> str:
    """rejected (never accepted), completed, stuck or lost; see the module's definitions."""
    if not order.accepted:
        return "rejected"
    if order.terminal:
        return "completed"
    return "stuck" if order.events else "lost"


@dataclass
class RunStats:
    requested: int = 0
    submitted: int = 0  # at least one POST went out
    accepted: int = 0
    replayed: int = 0  # accepted with 200: an earlier attempt had already committed the order
    retries: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by "<status> <code>"
    completed: int = 0
    confirmed: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by failure code
    stuck: int = 0
    lost: int = 0
    not_found: int = 0  # accepted, yet the notifier said it does not know the order
    shared_order_ids: int = 0  # accepted orders whose id another order of the run also got
    events: int = 0  # messages about orders, duplicates included
    duplicated: int = 0
    out_of_order: int = 0
    after_end: int = 0
    accept_window: float | None = None
    completion_window: float | None = None
    post_ms: Summary | None = None
    # From the time the schedule set for the first attempt to the accepting answer: waits for
    # a free slot and retries included (paced runs only).
    post_from_schedule_ms: Summary | None = None
    stages_ms: dict[str, Summary | None] = field(default_factory=dict)
    delivery_ms: Summary | None = None
    # Most orders accepted and not yet seen to their end at one moment (the client's view).
    peak_in_flight: int = 0

    @property
    def accept_per_second(self) -> float | None:
        return _rate(self.accepted, self.accept_window)

    @property
    def completion_per_second(self) -> float | None:
        return _rate(self.completed, self.completion_window)


def _rate(count: int, window: float | None) -> float | None:
    return count / window if window and window > 0 else None


def compute(orders: Iterable[OrderSample], parse: Callable[[str], float] = parse_at) -> RunStats:
    stats = RunStats()
    post: list[float] = []
    from_schedule: list[float] = []
    delivery: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in STAGE_NAMES}
    first_post: float | None = None
    last_accept: float | None = None
    last_terminal: float | None = None
    # (time, +1) when an order was accepted, (time, -1) when its end was read.
    changes: list[tuple[float, int]] = []
    ids: Counter[str] = Counter()
    for order in orders:
        stats.requested += 1
        stats.retries += order.retries
        if order.first_post_at is not None:
            stats.submitted += 1
            first_post = _min(first_post, order.first_post_at)
        kind = outcome(order)
        if kind == "rejected":
            stats.rejected[order.error or "UNKNOWN"] += 1
            continue
        stats.accepted += 1
        ids[order.order_id or ""] += 1
        stats.replayed += order.replayed
        stats.not_found += order.not_found
        if order.post_seconds is not None:
            post.append(order.post_seconds * 1000)
        if order.due_at is not None and order.accepted_at is not None:
            from_schedule.append((order.accepted_at - order.due_at) * 1000)
        last_accept = _max(last_accept, order.accepted_at)
        if order.accepted_at is not None:
            changes.append((order.accepted_at, 1))
        if kind == "stuck":
            stats.stuck += 1
        elif kind == "lost":
            stats.lost += 1
        line = timeline(order.events, parse)
        stats.events += len(order.events)
        stats.duplicated += line.duplicated
        stats.out_of_order += line.out_of_order
        stats.after_end += line.after_end
        delivery.extend(
            (event.received - at) * 1000 for event, at in zip(line.events, line.at, strict=True)
        )
        end = next((e for e in line.events if e.status in TERMINAL_STATUSES), None)
        if end is not None:
            stats.completed += 1
            last_terminal = _max(last_terminal, end.received)
            changes.append((end.received, -1))
            if end.status == "confirmed":
                stats.confirmed += 1
            else:
                stats.failed[end.code or "UNKNOWN"] += 1
        for name, seconds in stage_latencies(line).items():
            stages[name].append(seconds * 1000)
    if first_post is not None:
        stats.accept_window = last_accept - first_post if last_accept is not None else None
        stats.completion_window = last_terminal - first_post if last_terminal is not None else None
    stats.peak_in_flight = peak_concurrency(changes)
    stats.shared_order_ids = sum(n for n in ids.values() if n > 1)
    stats.post_ms = summarize(post)
    stats.post_from_schedule_ms = summarize(from_schedule)
    stats.stages_ms = {name: summarize(values) for name, values in stages.items()}
    stats.delivery_ms = summarize(delivery)
    return stats


def peak_concurrency(changes: list[tuple[float, int]]) -> int:
    """The highest running sum of +1/-1 changes in time order (an end read at the very moment
    of another order's accept counts first)."""
    peak = level = 0
    for _, change in sorted(changes):
        level += change
        peak = max(peak, level)
    return peak


def _min(current: float | None, value: float) -> float:
    return value if current is None else min(current, value)


def _max(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None else max(current, value)
