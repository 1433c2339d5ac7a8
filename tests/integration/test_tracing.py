"""One trace per order: the spans of the api, router, executor and notifier share its trace id.

The in-process stack runs all four services in this process, so one in-memory exporter sees
every span; the services are told apart by their instrumentation scope (`dexec.api`, ...).
Every order is sampled here (ALWAYS_ON); production samples 1% (see `dexec.tracing`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from dexec import tracing
from tests.support.stack import Stack
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"}
SERVICES = {"dexec.api", "dexec.router", "dexec.executor", "dexec.notifier"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


def order_trace(exporter: InMemorySpanExporter, order_id: str) -> list[ReadableSpan]:
    """Every span in the trace of the order's submit (empty until the submit span ended)."""
    finished = exporter.get_finished_spans()
    roots = [
        s
        for s in finished
        if s.name == "submit order" and (s.attributes or {}).get("dexec.order_id") == order_id
    ]
    if not roots:
        return []
    [root] = roots
    return [s for s in finished if s.context.trace_id == root.context.trace_id]


def scopes(trace: list[ReadableSpan]) -> set[str]:
    return {s.instrumentation_scope.name for s in trace if s.instrumentation_scope}


async def test_one_orders_spans_from_all_four_services_share_its_trace_id(
    start, spans: InMemorySpanExporter
) -> None:
    stack: Stack = await start()
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    other_id = (await stack.submit({**ORDER, "amount": "2"})).json()["orderId"]
    assert (await stack.watch(order_id))[-1]["event"] == "confirmed"
    assert (await stack.watch(other_id))[-1]["event"] == "confirmed"

    # The recorder writes the terminal event a moment after the socket saw it.
    async def whole_trace() -> list[ReadableSpan] | None:
        trace = order_trace(spans, order_id)
        recorded = {s.name for s in trace if s.name.startswith("record ")}
        return trace if scopes(trace) >= SERVICES and "record confirmed" in recorded else None

    trace = await eventually(whole_trace, what="spans of all four services in the trace")

    # One tree: the submit is the root and every other span's parent is in the same trace.
    ids = {s.context.span_id for s in trace}
    [root] = [s for s in trace if s.parent is None]
    assert root.name == "submit order" and root.instrumentation_scope.name == "dexec.api"
    assert all(s.parent.span_id in ids for s in trace if s is not root)
    names = {s.name for s in trace}
    assert {"router pending", "executor routed", "publish confirmed"} <= names
    # Nothing of this order is in another trace, and nothing of another order is in this one.
    for span in spans.get_finished_spans():
        order = (span.attributes or {}).get("dexec.order_id")
        if order == order_id:
            assert span.context.trace_id == root.context.trace_id, span.name
        elif order == other_id:
            assert span.context.trace_id != root.context.trace_id, span.name


async def test_a_retried_attempt_joins_the_orders_trace(start, spans: InMemorySpanExporter) -> None:
    # The first send of every order hits an RPC rate limit: the executor gets it twice.
    stack: Stack = await start(chain_rate_limit_first_attempts=1)
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    assert (await stack.watch(order_id))[-1]["event"] == "confirmed"

    async def both_attempts() -> list[ReadableSpan] | None:
        trace = order_trace(spans, order_id)
        attempts = [s for s in trace if s.name == "executor routed"]
        return attempts if len(attempts) == 2 else None

    first, second = sorted(
        await eventually(both_attempts, what="two executor spans in the trace"),
        key=lambda s: s.start_time or 0,
    )
    assert [first.attributes["dexec.delivery"], second.attributes["dexec.delivery"]] == [1, 2]
    assert [e.name for e in first.events] == ["retrying"]
    assert first.status.description == "RPC_RATE_LIMITED"


async def test_each_webhook_post_is_a_span_in_the_orders_trace(
    start, spans: InMemorySpanExporter
) -> None:
    stack: Stack = await start(webhook_allow_private_targets=True)  # a receiver on 127.0.0.1
    async with WebhookReceiver() as receiver:
        order_id = (await stack.submit({**ORDER, "webhookUrl": receiver.url})).json()["orderId"]
        streamed = await stack.watch(order_id)

        async def posted() -> list[ReadableSpan] | None:
            trace = order_trace(spans, order_id)
            webhook = [s for s in trace if s.name.startswith("webhook ")]
            return webhook if len(webhook) == len(streamed) else None

        webhook = await eventually(posted, what="a span per webhook POST in the order's trace")
    # The trace context travelled through the outbox: one span per event, each delivered.
    assert [s.name for s in webhook] == [f"webhook {m['event']}" for m in streamed]
    assert all(s.instrumentation_scope.name == "dexec.notifier" for s in webhook)
    assert all((s.attributes or {}).get("dexec.webhook.delivered") is True for s in webhook)
