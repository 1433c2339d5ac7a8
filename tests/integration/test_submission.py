"""Submitting orders: idempotency keys, and bad input refused with a JSON 4xx and no order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from dexec.bus.subjects import event_subject
from dexec.orders.states import EventType
from dexec_api.idempotency import IdempotencyStore
from dexec_api.order_request import parse_order
from tests.support.stack import Stack
from tests.support.stream import event_counts, orders_in_stream
from tests.support.waiting import eventually

ORDER = {"type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 50}
# ORDER as the API parses it with its defaults (what its idempotency claim fingerprints).
SPEC = parse_order(ORDER, 50, None)


async def test_twenty_concurrent_requests_with_one_key_create_one_order(stack: Stack) -> None:
    headers = {"Idempotency-Key": "burst-1"}
    responses = await asyncio.gather(*(stack.submit(ORDER, **headers) for _ in range(20)))

    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    order_ids = {r.json()["orderId"] for r in responses}
    assert len(order_ids) == 1
    (order_id,) = order_ids
    assert (await event_counts(stack.nats_url, order_id))["pending"] == 1
    assert (await stack.watch(order_id))[-1]["event"] == "confirmed"


async def test_same_key_and_body_later_returns_the_same_order(stack: Stack) -> None:
    first = await stack.submit(ORDER, **{"Idempotency-Key": "k-2"})
    order_id = first.json()["orderId"]
    await stack.watch(order_id)
    # Another spelling of the same order is the same body.
    same = {"inputToken": "sol", "outputToken": "USDC", "amount": 1, "slippage": "0.005"}

    again = await stack.submit(same, **{"Idempotency-Key": "k-2"})

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["orderId"] == order_id
    assert (await event_counts(stack.nats_url, order_id))["pending"] == 1


async def test_a_key_whose_first_request_died_before_publishing_places_the_order(
    stack: Stack, js: JetStreamContext
) -> None:
    """A request that claimed its key and died before the `pending` publish (the API killed in
    between) left a claim and no order: the client's retry with the key publishes it, and is
    the request that created it (202)."""
    store = await IdempotencyStore.open(js, ttl_seconds=3600)
    claim = await store.claim(None, "died-1", SPEC, "order-of-a-dead-request")
    assert claim.created

    retry = await stack.submit(ORDER, **{"Idempotency-Key": "died-1"})

    assert retry.status_code == 202
    assert retry.json()["orderId"] == "order-of-a-dead-request"
    assert (await stack.watch("order-of-a-dead-request"))[-1]["event"] == "confirmed"
    assert (await event_counts(stack.nats_url, "order-of-a-dead-request"))["pending"] == 1


async def test_only_the_request_that_made_a_claim_releases_it_unless_taken_over(
    js: JetStreamContext,
) -> None:
    """A request whose order was refused releases its key; but if another request with the key
    took the claim over to place the order meanwhile, the key must keep naming it."""
    store = await IdempotencyStore.open(js, ttl_seconds=3600)
    mine = await store.claim(None, "race-1", SPEC, "order-1")
    found = await store.claim(None, "race-1", SPEC, "order-2")
    await store.take_over(found)

    assert (mine.created, found.created, found.order_id) == (True, False, "order-1")
    assert await store.release(mine) is False
    assert await store.existing(None, "race-1", SPEC) is not None

    alone = await store.claim(None, "race-2", SPEC, "order-3")
    assert await store.release(alone) is True
    assert await store.existing(None, "race-2", SPEC) is None
    assert (await store.claim(None, "race-2", SPEC, "order-4")).created


async def test_same_key_with_a_different_body_is_refused(stack: Stack) -> None:
    await stack.submit(ORDER, **{"Idempotency-Key": "k-3"})

    clash = await stack.submit({**ORDER, "amount": "2"}, **{"Idempotency-Key": "k-3"})

    assert clash.status_code == 422
    assert clash.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await orders_in_stream(stack.nats_url) == 1


async def test_without_a_key_each_request_is_a_new_order(stack: Stack) -> None:
    one, two = await asyncio.gather(stack.submit(ORDER), stack.submit(ORDER))
    assert one.json()["orderId"] != two.json()["orderId"]


BAD_BODIES = {
    "missing amount": ({"tokenIn": "SOL", "tokenOut": "USDC"}, 422, "VALIDATION_ERROR"),
    "missing tokens": ({"amount": "1"}, 422, "VALIDATION_ERROR"),
    "missing tokenOut": ({"tokenIn": "SOL", "amount": "1"}, 422, "VALIDATION_ERROR"),
    "missing outputToken": ({"inputToken": "SOL", "amount": "1"}, 422, "VALIDATION_ERROR"),
    "side without pair": ({"side": "sell", "amount": "1"}, 422, "VALIDATION_ERROR"),
    "pair of three": (
        {"side": "sell", "pair": "SOL/USDC/", "amount": "1"},
        422,
        "VALIDATION_ERROR",
    ),
    "unknown token": ({"tokenIn": "SOL", "tokenOut": "DOGE", "amount": "1"}, 422, "UNKNOWN_TOKEN"),
    "zero amount": ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0"}, 422, "INVALID_AMOUNT"),
    "negative amount": (
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": -1},
        422,
        "INVALID_AMOUNT",
    ),
    "non-numeric amount": (
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "lots"},
        422,
        "INVALID_AMOUNT",
    ),
    "huge amount": (
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1e999999"},
        422,
        "INVALID_AMOUNT",
    ),
    "same token": ({"tokenIn": "SOL", "tokenOut": "wSOL", "amount": "1"}, 422, "SAME_TOKEN"),
    "limit order": (
        {"type": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"},
        422,
        "VALIDATION_ERROR",
    ),
    "slippage over 100%": (
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 10_001},
        422,
        "VALIDATION_ERROR",
    ),
    # Far below 1 bps, where inexact decimal arithmetic would have rounded it to 0 bps.
    "slippage finer than 1 bps by far": (
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": "1e-999999999"},
        422,
        "VALIDATION_ERROR",
    ),
    "array body": ([ORDER], 422, "VALIDATION_ERROR"),
    # A NUL could not be stored (Postgres JSONB refuses it) and would stall the recorder.
    "webhook url with a NUL": (
        {**ORDER, "webhookUrl": "http://a.example/\u0000x"},
        422,
        "VALIDATION_ERROR",
    ),
    "webhook url with a bad port": (
        {**ORDER, "webhookUrl": "http://a.example:80x/"},
        422,
        "VALIDATION_ERROR",
    ),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
async def test_bad_body_gets_a_json_4xx_and_no_order(stack: Stack, case: str) -> None:
    body, status, code = BAD_BODIES[case]
    response = await stack.http.post(f"{stack.api_url}/api/orders/execute", json=body)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if code == "VALIDATION_ERROR":  # each error names its field (null: the body as a whole)
        assert error["details"], error
        assert all(set(d) == {"field", "message"} for d in error["details"]), error
    assert await orders_in_stream(stack.nats_url) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tokenIn": "SOL", "amount": "1"}, "tokenOut"),
        ({"tokenOut": "USDC", "amount": "1"}, "tokenIn"),
        ({"inputToken": "SOL", "amount": "1"}, "outputToken"),
        ({"side": "sell", "amount": "1"}, "pair"),
        ({"pair": "SOL/USDC", "amount": "1"}, "side"),
        ({"side": "sell", "pair": "SOL/USDC/", "amount": "1"}, "pair"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippage": "0.00005"}, "slippage"),
        ([ORDER], None),
    ],
)
async def test_a_validation_error_names_its_field(
    stack: Stack, body: Any, field: str | None
) -> None:
    response = await stack.http.post(f"{stack.api_url}/api/orders/execute", json=body)
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == field
    assert detail["message"]


RAW_REQUESTS = {
    "invalid json": (b'{"tokenIn": "SOL",', "application/json", 400, "INVALID_JSON"),
    "wrong content type": (b"tokenIn=SOL&amount=1", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "nesting deeper than the parser's stack": (
        b"[" * 3000,
        "application/json",
        400,
        "INVALID_JSON",
    ),
    # A small body that pydantic's int parsing took hours over, in the API's event loop.
    "slippageBps as a JSON number with a huge exponent": (
        b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 1e999999999}',
        "application/json",
        422,
        "VALIDATION_ERROR",
    ),
    # Valid JSON, though longer than Python's int reads from text (4,300 digits).
    "a 5000-digit integer amount": (
        b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": %s}' % (b"9" * 5000),
        "application/json",
        422,
        "INVALID_AMOUNT",
    ),
    "body over the limit": (
        b'{"pad": "' + b"x" * 20_000 + b'"}',
        "application/json",
        413,
        "BODY_TOO_LARGE",
    ),
}


@pytest.mark.parametrize("case", RAW_REQUESTS, ids=list(RAW_REQUESTS))
async def test_malformed_request_gets_a_json_4xx_and_no_order(stack: Stack, case: str) -> None:
    content, content_type, status, code = RAW_REQUESTS[case]
    response = await stack.http.post(
        f"{stack.api_url}/api/orders/execute",
        content=content,
        headers={"content-type": content_type},
    )

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert await orders_in_stream(stack.nats_url) == 0


async def test_oversized_chunked_body_is_refused(stack: Stack) -> None:
    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(40):
            yield b"x" * 1024

    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{stack.api_url}/api/orders",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "BODY_TOO_LARGE"


@pytest.mark.parametrize("order_id", ["nope", "*", "%3E", "%00", "a.b", "x" * 65])
async def test_unknown_or_malformed_order_id_is_a_json_404(stack: Stack, order_id: str) -> None:
    await stack.submit(ORDER)  # an order exists that a wildcard would match
    response = await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ORDER_NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/orders/execute", "POST"),
        ("GET", "/api/orders/execute", "POST"),  # not an order id
        ("PUT", "/api/orders", "GET, HEAD, POST"),  # two routes share the path
        ("OPTIONS", "/api/orders", "GET, HEAD, POST"),
        ("POST", "/api/orders/some-order", "GET, HEAD"),  # HEAD wherever GET is
        ("POST", "/metrics", "GET, HEAD"),
        ("DELETE", "/metrics/", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),  # routes of an included router count too
        ("DELETE", "/api/config", "GET, HEAD"),
    ],
)
async def test_a_method_the_path_does_not_take_is_a_json_405_that_names_the_allowed(
    stack: Stack, method: str, path: str, allowed: str
) -> None:
    response = await stack.http.request(method, f"{stack.api_url}{path}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "HTTP_405"
    assert response.headers["Allow"] == allowed


async def test_metrics_are_served_at_their_path_alone(stack: Stack) -> None:
    for path in ("/metrics", "/metrics/"):
        response = await stack.http.get(f"{stack.api_url}{path}")
        assert response.status_code == 200
        assert "dexec_orders_accepted_total" in response.text
    response = await stack.http.get(f"{stack.api_url}/metrics/anything")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_a_client_leaving_mid_body_is_no_error_of_ours(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Counted as nginx counts it (499), not as a 500 with a traceback; nothing is placed."""
    caplog.set_level(logging.ERROR)
    head = (
        "POST /api/orders/execute HTTP/1.1\r\nHost: dexec\r\nContent-Type: application/json\r\n"
        "Idempotency-Key: left-mid-body\r\nContent-Length: 100\r\n\r\n"
    )
    host, port = stack.api_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + b'{"tokenIn":')
    await writer.drain()
    writer.close()

    async def counted() -> str | None:
        metrics = (await stack.http.get(f"{stack.api_url}/metrics")).text
        statuses = [
            line
            for line in metrics.splitlines()
            if line.startswith("dexec_http_request_duration_seconds_count")
            and 'route="/api/orders/execute"' in line
        ]
        return "\n".join(statuses) or None

    statuses = await eventually(counted, 10, "the request to be counted")
    assert 'status="499"' in statuses and 'status="500"' not in statuses
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    retry = await stack.submit(ORDER, **{"Idempotency-Key": "left-mid-body"})
    assert retry.status_code == 202  # the key was never claimed


async def test_a_stray_message_on_an_orders_subject_leaves_it_readable(
    start, js: JetStreamContext
) -> None:
    """Not an event (a publisher outside the engine): the order is still answered, from its
    events, and not with a 500."""
    stack: Stack = await start(without=frozenset({"executor"}))  # unfinished: read from NATS
    order_id = (await stack.submit(ORDER)).json()["orderId"]
    await js.publish(event_subject(EventType.RETRYING, order_id), b"{not json")

    response = await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")
    assert response.status_code == 200
    assert response.json()["orderId"] == order_id
    assert response.json()["events"][0]["event"] == "pending"
