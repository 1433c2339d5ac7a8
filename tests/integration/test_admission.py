"""Rate limits and backpressure refuse orders cleanly: a 4xx/5xx with Retry-After, no trace."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from dexec.bus.subjects import IDEMPOTENCY_BUCKET
from dexec_api.idempotency import IdempotencyStore
from dexec_api.order_request import parse_order
from dexec_router.service import RouterService
from dexec_router.settings import RouterSettings
from tests.support.stack import Stack
from tests.support.stream import orders_in_stream
from tests.support.waiting import eventually

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}


async def test_a_client_over_its_rate_gets_429_with_retry_after(start) -> None:
    stack: Stack = await start(rate_limit_per_second=1, rate_limit_burst=5)
    # The in-process services share one registry with earlier tests: count from here.
    refused_before = await rate_limited(stack)

    responses = [await stack.submit(ORDER) for _ in range(7)]

    assert [r.status_code for r in responses] == [202] * 5 + [429] * 2
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1
    assert await orders_in_stream(stack.nats_url) == 5
    assert await rate_limited(stack) == refused_before + 2


async def test_market_data_and_orders_draw_on_one_limit_per_client(start) -> None:
    # A bucket that does not refill within the test.
    stack: Stack = await start(rate_limit_per_second=0.01, rate_limit_burst=3)
    quote = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}

    async def ask_quote() -> int:
        return (await stack.http.get(f"{stack.api_url}/api/quote", params=quote)).status_code

    statuses = [await ask_quote(), await ask_quote(), (await stack.submit(ORDER)).status_code]
    assert statuses == [200, 200, 202]
    refused_quote, refused_order = (
        await stack.http.get(f"{stack.api_url}/api/quote", params=quote),
        await stack.submit(ORDER),
    )
    refused_tokens = await stack.http.get(f"{stack.api_url}/api/tokens")
    assert refused_quote.status_code == refused_order.status_code == 429
    assert refused_tokens.status_code == 429
    assert refused_quote.json()["error"]["code"] == "RATE_LIMITED"
    assert "Retry-After" in refused_quote.headers


@pytest.mark.parametrize(
    ("forwarded_allow_ips", "apart"), [("127.0.0.1", True), ("192.0.2.1", False)]
)
async def test_clients_behind_a_trusted_proxy_are_limited_apart(
    start, forwarded_allow_ips: str, apart: bool
) -> None:
    """The test client is the proxy: its X-Forwarded-For names the client only if trusted."""
    stack: Stack = await start(
        rate_limit_per_second=0.01, rate_limit_burst=2, forwarded_allow_ips=forwarded_allow_ips
    )
    first = [await stack.submit(ORDER, **{"X-Forwarded-For": "203.0.113.1"}) for _ in range(2)]
    other = await stack.submit(ORDER, **{"X-Forwarded-For": "203.0.113.2"})

    assert [r.status_code for r in first] == [202, 202]
    assert other.status_code == (202 if apart else 429)


async def rate_limited(stack: Stack) -> float:
    metrics = (await stack.http.get(f"{stack.api_url}/metrics/")).text
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "dexec_orders_rejected_total" and sample.labels == {
                "reason": "rate_limited"
            }:
                return sample.value
    return 0.0


async def overloaded_stack(start) -> tuple[Stack, list[str]]:
    """A stack whose router backlog is over its limit of 3, as the API has seen, and the ids
    of the four orders in it (submitted with the keys `before-<i>`)."""
    # No router: accepted orders wait in its consumer's backlog.
    stack: Stack = await start(
        without=frozenset({"router"}), max_router_backlog=3, backlog_refresh_seconds=0.05
    )
    # The router's consumer exists once a router has started; declare it as a router would.
    router = RouterService(RouterSettings(nats_url=stack.nats_url, router_metrics_port=0))
    await router.start()
    await router.stop()  # declared, then gone: its backlog now only grows

    accepted = [await stack.submit(ORDER, **{"Idempotency-Key": f"before-{i}"}) for i in range(4)]
    assert [r.status_code for r in accepted] == [202] * 4

    async def backlog_seen() -> bool:  # the API reads the backlog in the background
        metrics = (await stack.http.get(f"{stack.api_url}/metrics/")).text
        return "dexec_router_backlog 4.0" in metrics

    await eventually(backlog_seen, what="the API to see a backlog of 4")
    return stack, [r.json()["orderId"] for r in accepted]


async def test_orders_are_refused_while_the_router_backlog_is_over_the_limit(start) -> None:
    stack, _ = await overloaded_stack(start)

    response = await stack.submit(ORDER)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "OVERLOADED"
    assert response.headers["Retry-After"] == "1"
    assert await orders_in_stream(stack.nats_url) == 4


async def test_a_key_that_names_an_order_is_answered_while_new_orders_are_refused(
    start, js: JetStreamContext
) -> None:
    """Backpressure refuses new orders only: a retry of an order that exists gets it (200), and
    another order under its key is a 422, not "not accepted". A refused new order leaves its
    key unclaimed."""
    stack, order_ids = await overloaded_stack(start)

    retry = await stack.submit(ORDER, **{"Idempotency-Key": "before-0"})
    clash = await stack.submit({**ORDER, "amount": "2"}, **{"Idempotency-Key": "before-0"})
    new = await stack.submit(ORDER, **{"Idempotency-Key": "after-0"})

    assert retry.status_code == 200, retry.text
    assert retry.json()["orderId"] == order_ids[0]
    assert clash.status_code == 422, clash.text
    assert clash.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert new.status_code == 503, new.text
    assert new.json()["error"]["code"] == "OVERLOADED"
    assert await orders_in_stream(stack.nats_url) == 4
    store = IdempotencyStore(await js.key_value(IDEMPOTENCY_BUCKET))
    assert await store.existing(None, "after-0", parse_order(ORDER, 50, None)) is None
