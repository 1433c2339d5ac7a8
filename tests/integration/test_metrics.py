"""What the services export while orders go through: one confirmed after a retry, one failed.

The in-process stack shares one registry between its services, so the API's /metrics shows
all of them; counts are compared before and after, since earlier tests in this process count
too. The process-based stack (own /metrics per service) is scraped by Prometheus in
tests/e2e/test_dashboards_prometheus.py.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.stack import Stack
from tests.support.waiting import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "2"}


async def scrape(stack: Stack) -> Samples:
    response = await stack.http.get(f"{stack.api_url}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_an_orders_life_shows_in_the_metrics(start) -> None:
    # Every swap lands 1% worse than quoted, and every order's first send is rate limited.
    stack: Stack = await start(chain_frontrun_bps=100, chain_rate_limit_first_attempts=1)
    before = await scrape(stack)

    confirmed = (await stack.submit({**ORDER, "slippageBps": 200})).json()["orderId"]
    failed = (await stack.submit({**ORDER, "slippageBps": 50})).json()["orderId"]
    rejected = await stack.submit({**ORDER, "amount": "-1"})
    assert rejected.status_code == 422
    assert (await stack.watch(confirmed))[-1]["event"] == "confirmed"
    assert (await stack.watch(failed))[-1]["event"] == "failed"
    assert (await stack.http.get(f"{stack.api_url}/api/orders/{confirmed}")).status_code == 200

    def grew(samples: Samples, name: str, **labels: str) -> float:
        return get(samples, name, **labels) - get(before, name, **labels)

    # The recorder measures end to end once it has written both terminal events.
    async def both_recorded() -> Samples | None:
        now = await scrape(stack)
        count = "dexec_stage_duration_seconds_count"
        finished = [
            grew(now, count, stage=s) for s in ("pending_to_confirmed", "pending_to_failed")
        ]
        return now if finished == [1, 1] else None

    after = await eventually(both_recorded, what="both orders' end-to-end times")

    assert grew(after, "dexec_orders_accepted_total") == 2
    assert grew(after, "dexec_orders_rejected_total", reason="invalid_amount") == 1
    # Each order's signature is submitted again before its second send (the first was 429).
    for event, count in {"pending": 2, "routed": 2, "submitted": 4, "confirmed": 1}.items():
        assert grew(after, "dexec_events_published_total", event=event) == count, event
    assert grew(after, "dexec_events_published_total", event="failed") == 1
    assert grew(after, "dexec_events_consumed_total", consumer="router", event="pending") == 2
    # Each routed order is delivered twice to the executor: the rate-limited send is retried.
    assert grew(after, "dexec_events_consumed_total", consumer="executor", event="routed") == 4
    assert grew(after, "dexec_events_consumed_total", consumer="recorder", event="failed") == 1
    retried = {"stage": "executor", "code": "RPC_RATE_LIMITED"}
    assert grew(after, "dexec_order_retries_total", **retried) == 2
    slipped = {"stage": "executor", "code": "SLIPPAGE_EXCEEDED"}
    assert grew(after, "dexec_order_failures_total", **slipped) == 1

    stages = {
        "accept_to_routing": 2,
        "routing_to_routed": 2,
        "building_to_submitted": 2,
        "submitted_to_confirmed": 1,
    }
    for stage, count in stages.items():
        assert grew(after, "dexec_stage_duration_seconds_count", stage=stage) == count, stage
    assert grew(after, "dexec_quotes_total", venue="raydium", outcome="ok") >= 2
    assert grew(after, "dexec_quote_duration_seconds_count", venue="meteora") >= 2
    routes = sum(v - before.get(k, 0) for k, v in after.items() if k[0] == "dexec_routes_total")
    assert routes == 2

    assert grew(after, "dexec_recorder_events_total") >= 14
    assert grew(after, "dexec_recorder_lag_seconds_count") >= 14
    assert grew(after, "dexec_recorder_batch_size_count") >= 1
    assert grew(after, "dexec_ws_messages_sent_total") >= 14
    read = {"service": "api", "route": "/api/orders/{order_id}", "method": "GET", "status": "200"}
    assert grew(after, "dexec_http_request_duration_seconds_count", **read) == 1
    submitted = {
        "service": "api",
        "route": "/api/orders/execute",
        "method": "POST",
        "status": "202",
    }
    assert grew(after, "dexec_http_request_duration_seconds_count", **submitted) == 2
    for consumer in ("router", "executor", "recorder"):
        assert ("dexec_consumer_pending_messages", frozenset({("consumer", consumer)})) in after

    # Bounded labels: no order id anywhere in a label value.
    for _name, labels in after:
        values = {value for _, value in labels}
        assert not values & {confirmed, failed}
