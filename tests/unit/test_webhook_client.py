"""The webhooks' HTTP client against a real local receiver: it resolves the host, refuses a
target with any non-public address before connecting, and otherwise connects to an address it
resolved while the request keeps the URL's host name."""

from __future__ import annotations

import httpx
import pytest

from dexec.webhook_targets import RefusedTarget
from dexec_notifier.webhook_client import webhook_client
from tests.support.webhook_receiver import WebhookReceiver


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "2130706433"])
async def test_a_private_target_is_refused_before_any_connection(name: str) -> None:
    async with WebhookReceiver() as receiver, webhook_client(5, allow_private=False) as client:
        with pytest.raises(RefusedTarget):
            await client.post(receiver.url_via(name), content=b"{}")
    assert receiver.received == []


async def test_with_private_targets_allowed_a_name_reaches_its_address() -> None:
    async with WebhookReceiver() as receiver, webhook_client(5, allow_private=True) as client:
        # `localhost` may resolve to ::1 first, where nothing listens: the next address is tried.
        response = await client.post(receiver.url_via("localhost"), content=b"{}")
    assert response.status_code == 200
    [received] = receiver.received
    assert received.headers["host"] == f"localhost:{receiver.port}"


async def test_a_name_that_does_not_resolve_is_an_ordinary_connect_error() -> None:
    """Retried like a refused connection: DNS may come back; only a refusal is final."""
    async with webhook_client(5, allow_private=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("http://hooks.example.invalid/h", content=b"{}")
