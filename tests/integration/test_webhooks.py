"""Webhooks: every event POSTed to the order's URL, signed, in order, retried after failures."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest

from tests.support.stack import Stack
from tests.support.stream import orders_in_stream
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "test-webhook-secret"
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]
ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}


def signature_ok(headers: dict[str, str], body: bytes) -> bool:
    """Verify as a receiver would, independently of the engine's code."""
    timestamp = headers["x-dexec-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and headers["x-dexec-signature"] == f"v1={expected.hexdigest()}"


async def test_events_are_posted_signed_in_order_and_retried(start) -> None:
    stack: Stack = await start(
        webhook_secret=SECRET,
        webhook_backoff_base_seconds=0.1,
        webhook_allow_private_targets=True,  # the receiver is on 127.0.0.1
    )
    async with WebhookReceiver(fail_first=3) as receiver:
        body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": receiver.url}
        order_id = (await stack.submit(body)).json()["orderId"]
        streamed = await stack.watch(order_id)

        async def all_accepted() -> bool:
            return len(receiver.accepted) == len(LIFECYCLE)

        await eventually(all_accepted, what="every event accepted by the receiver")

    # The first three POSTs were refused; the same event came again until accepted.
    assert [r.answered for r in receiver.received[:4]] == [503, 503, 503, 200]
    first = receiver.received[0].headers["x-dexec-event-id"]
    assert {r.headers["x-dexec-event-id"] for r in receiver.received[:4]} == {first}
    assert all(signature_ok(r.headers, r.body) for r in receiver.received)
    delivered = [orjson.loads(r.body) for r in receiver.accepted]
    assert [d["event"] for d in delivered] == LIFECYCLE
    assert delivered == streamed  # the same messages as the WebSocket, in the same order


async def test_a_webhook_url_must_be_http(stack: Stack) -> None:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "webhookUrl": "file:///etc"}
    response = await stack.submit(body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8080/hook",
    ],
)
async def test_a_webhook_url_to_localhost_or_a_private_address_is_refused(
    stack: Stack, url: str
) -> None:
    response = await stack.submit({**ORDER, "webhookUrl": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in error["details"]] == ["webhookUrl"]
    assert await orders_in_stream(stack.nats_url) == 0
