"""Prometheus metrics that more than one service exports, each defined once (DESIGN §8).

Every service process has its own registry (the default one), so a metric defined here shows
up in each service that touches it, told apart by Prometheus' `job`/`instance` labels.

Hot paths reach label children through `Children` (a dict lookup) instead of `.labels(...)`.
Children whose label values are known (event types, stages) are bound at zero up front.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

from dexec.orders.states import EventType

# From 1 ms (a zero-latency stage) to two minutes (an order that waited out its retries).
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

EVENTS_PUBLISHED = Counter(
    "dexec_events_published_total",
    "Order events newly committed to the stream (a duplicate the stream dropped is not counted)",
    ["event"],
)
EVENTS_CONSUMED = Counter(
    "dexec_events_consumed_total",
    "Order event deliveries handled, per durable consumer (a redelivery counts again)",
    ["consumer", "event"],
)

EVENT_LOOP_LAG = Histogram(
    "dexec_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 0.25 s: work holding the loop, or no CPU",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

STAGE_DURATION = Histogram(
    "dexec_stage_duration_seconds",
    "Time an order spends in one step of its life, and end to end",
    ["stage"],
    buckets=DURATION_BUCKETS,
)


class StageName(StrEnum):
    """The `stage` label values of `dexec_stage_duration_seconds`."""

    ACCEPT_TO_ROUTING = "accept_to_routing"  # pending committed → the router starts (router)
    ROUTING_TO_ROUTED = "routing_to_routed"  # quoting and choosing the route (router)
    BUILDING_TO_SUBMITTED = "building_to_submitted"  # build and sign (executor)
    SUBMITTED_TO_CONFIRMED = "submitted_to_confirmed"  # send and confirm on chain (executor)
    PENDING_TO_CONFIRMED = "pending_to_confirmed"  # end to end (notifier's recorder)
    PENDING_TO_FAILED = "pending_to_failed"  # end to end (notifier's recorder)


ORDER_RETRIES = Counter(
    "dexec_order_retries_total",
    "Attempts that failed with a transient error and were scheduled again",
    ["stage", "code"],
)
ORDER_FAILURES = Counter(
    "dexec_order_failures_total",
    "Orders that ended failed, by the stage that gave up and the error code",
    ["stage", "code"],
)

CONSUMER_PENDING = Gauge(
    "dexec_consumer_pending_messages",
    "Messages in the stream the durable consumer has not delivered yet (its backlog)",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "dexec_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not acknowledged yet (in flight)",
    ["consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "dexec_consumer_redelivered_messages",
    "Unacknowledged messages of the durable consumer that were delivered more than once",
    ["consumer"],
)

SERVICE_INFO = Gauge(
    "dexec_service_info",
    "1 for the dexec service this process runs; join on instance to pick one service's process "
    "metrics (process_cpu_seconds_total, process_resident_memory_bytes, ...)",
    ["service"],
)

HTTP_REQUEST_DURATION = Histogram(
    "dexec_http_request_duration_seconds",
    "HTTP requests served by the api and the notifier, by route template, method and status",
    ["service", "route", "method", "status"],
    buckets=DURATION_BUCKETS[:-3],  # HTTP answers within seconds, or time out
)


def name_process(service: str) -> None:
    """At process start: say which service this process is (`dexec_service_info`).

    Also drops the `*_created` series prometheus_client adds beside every counter and
    histogram child: nothing here reads them, and they would double the series scraped.
    """
    disable_created_metrics()
    SERVICE_INFO.labels(service).set(1)


class Children(dict[Any, Any]):
    """A metric's label children by key, each bound on first use and then a dict lookup.

    `.labels(...)` formats and looks up the label tuple under a lock on every call; the hot
    paths look their child up here instead. Binding on first use (not ahead for every key)
    keeps a service from exporting series it never observes. A key is the value of the last
    label, or a tuple of the values of the last few; `prefix` holds the ones in front.
    """

    def __init__(self, metric: MetricWrapperBase, *prefix: str) -> None:
        super().__init__()
        self._metric = metric
        self._prefix = prefix

    def __missing__(self, key: Any) -> Any:
        values = key if isinstance(key, tuple) else (key,)
        child = self._metric.labels(*self._prefix, *(str(v) for v in values))
        self[key] = child
        return child

    def bind(self, keys: Iterable[Any]) -> Children:
        """Bind these children now, at zero. Worth it where the keys are known: a series that
        first appears with a value already counted loses that count to `rate()`."""
        for key in keys:
            self[key]  # binds it, through __missing__
        return self


# By event type, for `dexec.bus.publisher`, which every service calls per transition.
PUBLISHED = Children(EVENTS_PUBLISHED).bind(EventType)
