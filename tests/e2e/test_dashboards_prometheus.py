"""Every query of every Grafana dashboard returns data from a real Prometheus.

The four services run as their own processes (each with its own /metrics, as deployed), a real
Prometheus scrapes them every second, and a small load goes through in two waves: orders that
confirm after a retried send, fail on slippage or find no route, one refused at the door, and
one with a webhook, watched over a WebSocket. Then each panel query in
charts/dexec/dashboards/*.json, with Grafana's `$__rate_interval` replaced by a window covering
the whole run, must return a number; and every `dexec_*` metric the services export must
appear on some dashboard.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from dexec_tools.servers import free_port
from tests.support.process_stack import ProcessStack, process_stack, remove
from tests.support.prometheus import Prometheus
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

DASHBOARDS = Path(__file__).parents[2] / "charts" / "dexec" / "dashboards"
# Longer than the test runs, so every rate covers all of its traffic.
WINDOW = "10m"
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"}
DUST = "0.000000001"  # one lamport: no route leaves anything after fees (NO_ROUTE)
CONFIRMING, FAILING = 10, 2  # per wave


def panel_queries() -> dict[str, str]:
    """`<dashboard> / <panel> / <refId>` -> PromQL, for every target of every panel."""
    queries = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                where = f"{dashboard['title']} / {panel['title']} / {target['refId']}"
                queries[where] = target["expr"].replace("$__rate_interval", WINDOW)
    return queries


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


@pytest.fixture
def engine() -> Iterator[tuple[ProcessStack, Prometheus]]:
    router_port, executor_port = free_port(), free_port()
    settings = {
        "router_metrics_port": str(router_port),
        "executor_metrics_port": str(executor_port),
        "latency_mode": "realistic",
        "quote_latency_ms_min": "5",
        "quote_latency_ms_max": "30",
        "slot_ms": "100",
        # Every swap lands 1% worse than quoted (50 bps orders fail on slippage), and every
        # order's first send is rate limited (each order is retried once).
        "chain_frontrun_bps": "100",
        "chain_rate_limit_first_attempts": "1",
        "retry_backoff_base_seconds": "0.2",
        # A webhook event that arrives before its predecessor was delivered waits a backoff.
        "webhook_backoff_base_seconds": "0.1",
        "webhook_backoff_max_seconds": "1",
        "webhook_allow_private_targets": "true",  # the receiver is on 127.0.0.1
        "log_level": "WARNING",
    }
    stack = process_stack(settings)
    prometheus = Prometheus(
        stack.data_dir / "prometheus",
        {
            "dexec-api": f"127.0.0.1:{stack.api_port}",
            "dexec-notifier": f"127.0.0.1:{stack.notifier_port}",
            "dexec-router": f"127.0.0.1:{router_port}",
            "dexec-executor": f"127.0.0.1:{executor_port}",
        },
    )
    try:
        stack.start()
        prometheus.start()
        prometheus.wait_scraping()
        yield stack, prometheus
    finally:
        try:
            prometheus.stop()
        finally:
            try:
                stack.stop()
            finally:
                remove(stack)


@dataclass
class Load:
    """One wave of traffic: orders that confirm (after a retried send), fail on slippage or
    find no route, one refused at the door, and one with a webhook watched over a WebSocket."""

    stack: ProcessStack
    http: httpx.AsyncClient
    receiver: WebhookReceiver
    finished: int = 0
    refused: int = 0
    webhook_events: int = 0

    async def wave(self) -> None:
        bodies = (
            [{**ORDER, "slippageBps": 200}] * CONFIRMING
            + [{**ORDER, "slippageBps": 50}] * FAILING
            + [{**ORDER, "amount": DUST}]
            + [{**ORDER, "slippageBps": 200, "webhookUrl": self.receiver.url}]
        )
        responses = await asyncio.gather(*(self._submit(body) for body in bodies))
        assert {r.status_code for r in responses} == {202}
        order_ids = [r.json()["orderId"] for r in responses]
        assert (await self._submit({**ORDER, "amount": "-1"})).status_code == 422
        self.refused += 1

        async with websockets.connect(f"{self.stack.ws_url}/ws/orders/{order_ids[-1]}") as ws:
            frames = [orjson.loads(frame) async for frame in ws]
        assert frames[-1]["event"] == "confirmed"
        self.webhook_events += len(frames)

        async def all_finished() -> bool:
            return all(await asyncio.gather(*(self._finished(o) for o in order_ids)))

        async def webhook_delivered() -> bool:
            return len(self.receiver.accepted) >= self.webhook_events

        await eventually(all_finished, timeout=60, what="every order confirmed or failed")
        await eventually(webhook_delivered, timeout=60, what="the webhook order's events")
        self.finished += len(order_ids)

    async def _submit(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"{self.stack.api_url}/api/orders/execute", json=body)

    async def _finished(self, order_id: str) -> bool:
        order = (await self.http.get(f"{self.stack.api_url}/api/orders/{order_id}")).json()
        return order.get("status") in ("confirmed", "failed")


async def scraped(prometheus: Prometheus, load: Load) -> None:
    """Until Prometheus holds every service's counts as they are after the load so far."""
    least = {
        'sum(dexec_events_published_total{event=~"confirmed|failed"})': load.finished,
        "sum(dexec_orders_rejected_total)": load.refused,
        "sum(dexec_webhook_deliveries_total)": load.webhook_events,
    }

    async def caught_up() -> bool:
        results = {expr: prometheus.query(expr) for expr in least}
        return all(r and float(r[0]["value"][1]) >= least[e] for e, r in results.items())

    await eventually(caught_up, what="Prometheus to scrape the load")


async def test_every_dashboard_query_returns_data(
    engine: tuple[ProcessStack, Prometheus],
) -> None:
    stack, prometheus = engine
    queries = panel_queries()
    assert len(queries) > 40  # the five dashboards are there

    async with WebhookReceiver() as receiver, httpx.AsyncClient(timeout=30) as http:
        load = Load(stack, http, receiver)
        # Two waves with a scrape between: a series born in the first wave (a new error code,
        # venue or route shape) shows its increase to rate() only from the second on.
        await load.wave()
        await scraped(prometheus, load)
        await load.wave()
    await scraped(prometheus, load)

    # Scraped as of the end of the load; a rate also needs a second sample of a series that
    # first appeared in the last scrape, so give it a few more scrapes before calling it empty.
    def missing() -> dict[str, str]:
        return {where: expr for where, expr in queries.items() if not has_number(prometheus, expr)}

    async def every_panel_has_data() -> bool:
        return not missing()

    try:
        await eventually(every_panel_has_data, timeout=10, what="data for every panel")
    except AssertionError:
        empty = "\n".join(f"{where}: {expr}" for where, expr in missing().items())
        pytest.fail(f"panels without data:\n{empty}")

    exported = {base_name(n) for n in prometheus.metric_names() if n.startswith("dexec_")}
    shown = set(re.findall(r"\bdexec_[a-z_]+", " ".join(queries.values())))
    assert exported - {base_name(n) for n in shown} == set(), "metrics on no dashboard"


def has_number(prometheus: Prometheus, expr: str) -> bool:
    """True if the query's result has at least one finite value (a quantile of nothing is NaN)."""
    return any(math.isfinite(float(r["value"][1])) for r in prometheus.query(expr))


def base_name(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)
