"""The webhooks' HTTP client against a real local receiver: it resolves the host, refuses a
target with any non-public address before connecting, and otherwise connects to an address it
resolved while the request keeps the URL's host name."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest

from dexec.webhook_targets import RefusedTarget
from dexec_notifier.webhook_client import (
    PER_ADDRESS_SECONDS,
    TargetCheckingBackend,
    numeric_address,
    webhook_client,
)
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


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example"])
async def test_a_name_no_resolver_accepts_is_refused_not_retried(host: str) -> None:
    async with webhook_client(5, allow_private=False) as client:
        with pytest.raises(RefusedTarget, match="not a valid host name"):
            await client.post(f"http://{host}/h", content=b"{}")


@pytest.fixture
def silent_and_listening_port() -> Iterator[int]:
    """A port on which 127.0.0.2 takes no connection (a full accept queue drops the SYN, as a
    broken route would) and 127.0.0.1 accepts."""
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    silent = socket.create_server(("127.0.0.2", port), backlog=0)
    filler = socket.create_connection(("127.0.0.2", port))  # the queue's one place
    try:
        yield port
    finally:
        for sock in (filler, silent, listening):
            sock.close()


async def test_an_address_that_never_answers_leaves_time_for_the_next(
    silent_and_listening_port: int,
) -> None:
    backend = TargetCheckingBackend(allow_private=True)
    async with asyncio.timeout(PER_ADDRESS_SECONDS + 3):
        stream = await backend._connect_any(
            ["127.0.0.2", "127.0.0.1"], silent_and_listening_port, None, None
        )
    assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
    await stream.aclose()


@pytest.fixture
def silent_name_server() -> Iterator[tuple[str, socket.socket]]:
    """A name server (UDP, on a free port) that takes every query and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}", server
    finally:
        server.close()


async def test_lookups_a_name_server_never_answers_do_not_hold_up_other_webhooks(
    silent_name_server: tuple[str, socket.socket],
) -> None:
    """Many POSTs to names whose lookups never end (a dead name server) are in flight; a POST
    to a name in the hosts file, and one to an address, still go through at once. Lookups on
    a thread pool would have queued behind the hung ones."""
    address, server = silent_name_server
    async with (
        WebhookReceiver() as receiver,
        webhook_client(3, allow_private=True, nameservers=[address]) as client,
    ):
        hung = [
            asyncio.create_task(client.post(f"http://hook-{i}.unanswered.example/h"))
            for i in range(16)
        ]
        async with asyncio.timeout(2):  # well before the hung POSTs' 3 s timeout
            by_name = await client.post(receiver.url_via("localhost"), content=b"{}")
            by_address = await client.post(receiver.url, content=b"{}")
        outcomes = await asyncio.gather(*hung, return_exceptions=True)
    assert (by_name.status_code, by_address.status_code) == (200, 200)
    assert all(isinstance(o, httpx.ConnectTimeout) for o in outcomes), outcomes
    assert server.recv(512)  # the queries did go to the silent name server


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1")],
)
def test_numeric_hosts_are_read_as_the_system_reads_them(host: str, address: str) -> None:
    assert numeric_address(host) == [address]
    assert numeric_address("hooks.example") == []
