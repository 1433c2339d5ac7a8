"""An order submitted while NATS is away or silent is committed once, refused, or named.

Each test runs its own NATS server so it can stop, pause or strip it. The API must know what
became of its `pending` publish: a submit that gave up with a bare 503 while its publish was
still to be stored would be an order the client never heard of.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.js.api import DiscardPolicy
from prometheus_client import REGISTRY

from dexec.bus.connection import ensure_stream
from dexec.bus.subjects import IDEMPOTENCY_BUCKET, STREAM, kv_stream
from dexec.settings import CommonSettings
from dexec_tools.servers import NatsServer
from tests.support.stack import Stack, api_alone, stop_nats
from tests.support.stream import event_counts, orders_in_stream
from tests.support.waiting import eventually

BODY = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5"}


def commit_retries() -> float:
    return REGISTRY.get_sample_value("dexec_api_commit_retries_total") or 0.0


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
async def api_only(
    nats_server: NatsServer, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    async with api_alone(nats_server, database_url, commit_timeout_seconds=request.param) as stack:
        yield stack


async def pending_copies(nats_url: str, order_id: str) -> int:
    return (await event_counts(nats_url, order_id)).get("pending", 0)


@pytest.mark.parametrize("api_only", [30.0], indirect=True)
async def test_a_submit_during_an_outage_commits_once_when_nats_returns(
    nats_server: NatsServer, api_only: Stack
) -> None:
    stack, before = api_only, commit_retries()
    await stop_nats(nats_server, stack)
    submit = asyncio.create_task(stack.submit(BODY))

    async def retried() -> bool:
        return commit_retries() > before

    await eventually(retried, what="the API to publish the order again")
    await asyncio.to_thread(nats_server.start)
    response = await asyncio.wait_for(submit, 30)

    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]
    # Every attempt was sent on reconnecting; the stream kept one.
    assert await pending_copies(nats_server.url, order_id) == 1


@pytest.mark.parametrize("api_only", [1.0], indirect=True)
async def test_a_submit_while_nats_is_gone_is_refused_and_never_sent_later(
    nats_server: NatsServer, api_only: Stack
) -> None:
    stack = api_only
    await stop_nats(nats_server, stack)
    refused = await stack.submit(BODY)

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "BUS_UNAVAILABLE"
    assert refused.headers["retry-after"] == "1"

    # Nothing was held for the reconnect: the next order is the stream's only one.
    await asyncio.to_thread(nats_server.start)

    async def accepted() -> bool:
        return (await stack.submit(BODY)).status_code == 202

    await eventually(accepted, what="an order accepted after NATS returned")
    assert await orders_in_stream(nats_server.url) == 1


@pytest.mark.parametrize("api_only", [1.0], indirect=True)
async def test_a_submit_without_a_stream_is_refused_at_once(
    nats_server: NatsServer, api_only: Stack
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().delete_stream(STREAM)
    finally:
        await nc.close()

    response = await api_only.submit(BODY)

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "BUS_UNAVAILABLE"


@pytest.mark.parametrize("api_only", [1.0], indirect=True)
async def test_a_submit_nats_took_but_did_not_ack_names_the_order(
    nats_server: NatsServer, api_only: Stack
) -> None:
    """A paused server keeps the connection but answers nothing: the publish may be stored."""
    assert nats_server.pid is not None
    os.kill(nats_server.pid, signal.SIGSTOP)
    try:
        response = await api_only.submit(BODY)
    finally:
        os.kill(nats_server.pid, signal.SIGCONT)

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "COMMIT_UNCERTAIN"
    order_id = error["details"]["orderId"]
    assert error["details"]["links"]["self"] == f"/api/orders/{order_id}"

    # Resumed, the server stores what it was sent: the order exists, once, under that id.
    async def committed() -> int:
        return await pending_copies(nats_server.url, order_id)

    assert await eventually(committed, what="the order in the stream") == 1


@pytest.mark.parametrize("api_only", [1.0], indirect=True)
async def test_an_order_the_stream_refused_leaves_its_key_free(
    nats_server: NatsServer, api_only: Stack
) -> None:
    """Certainly not stored, the order does not exist, so its key must not name it: another
    order may use the key, and the same order sent again is created by that request (202)."""
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().delete_stream(STREAM)
        refused = [
            await api_only.submit(BODY, **{"Idempotency-Key": key}) for key in ("k-a", "k-b")
        ]
        await ensure_stream(nc.jetstream(), CommonSettings(nats_url=nats_server.url))
    finally:
        await nc.close()
    assert [r.json()["error"]["code"] for r in refused] == ["BUS_UNAVAILABLE"] * 2

    other = await api_only.submit({**BODY, "amount": "2"}, **{"Idempotency-Key": "k-a"})
    same = await api_only.submit(BODY, **{"Idempotency-Key": "k-b"})

    assert other.status_code == 202, other.text
    assert same.status_code == 202, same.text
    assert await orders_in_stream(nats_server.url) == 2


@pytest.mark.parametrize("api_only", [1.0], indirect=True)
async def test_a_refused_order_whose_key_cannot_be_released_says_retry_with_the_key(
    nats_server: NatsServer, api_only: Stack
) -> None:
    """The stream refuses the `pending` and the idempotency bucket then refuses the release:
    the key still names the order, so the answer cannot be BUS_UNAVAILABLE (which promises a
    free key) but IDEMPOTENCY_KEY_UNCERTAIN, and a retry with the key places the order."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    bucket = kv_stream(IDEMPOTENCY_BUCKET)
    as_configured = (await js.stream_info(bucket)).config
    try:
        await js.delete_stream(STREAM)
        # One message per key, and no more: the claim is stored, its release (a delete
        # marker on the same subject) refused.
        await js.update_stream(
            replace(
                as_configured,
                discard=DiscardPolicy.NEW,
                discard_new_per_subject=True,
                max_msgs_per_subject=1,
            )
        )
        refused = await api_only.submit(BODY, **{"Idempotency-Key": "k-stuck"})
        await js.update_stream(as_configured)
        await ensure_stream(js, CommonSettings(nats_url=nats_server.url))
    finally:
        await nc.close()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "IDEMPOTENCY_KEY_UNCERTAIN"

    retry = await api_only.submit(BODY, **{"Idempotency-Key": "k-stuck"})

    assert retry.status_code == 202, retry.text
    assert await pending_copies(nats_server.url, retry.json()["orderId"]) == 1
    assert await orders_in_stream(nats_server.url) == 1


@pytest.mark.parametrize("api_only", [1.0], indirect=True)
async def test_a_key_retried_while_nats_is_gone_may_name_an_order(
    nats_server: NatsServer, api_only: Stack
) -> None:
    """The key's claim cannot be read, and it may name an order that exists: not "not
    accepted" (BUS_UNAVAILABLE), but "retry with the key to find out"."""
    stack = api_only
    placed = await stack.submit(BODY, **{"Idempotency-Key": "k-c"})
    assert placed.status_code == 202, placed.text
    await stop_nats(nats_server, stack)

    retry = await stack.submit(BODY, **{"Idempotency-Key": "k-c"})

    assert retry.status_code == 503, retry.text
    assert retry.json()["error"]["code"] == "IDEMPOTENCY_KEY_UNCERTAIN"
    assert retry.headers["retry-after"] == "1"
