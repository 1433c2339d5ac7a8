"""The webhooks' HTTP client, which connects only to addresses `dexec.webhook_targets` allows.

The check sits where each connection is opened, in httpcore's network backend: the URL's host
is resolved once, every address it resolves to is judged (one private address refuses the
target), and the socket is connected to one of those very addresses. So DNS answering
differently between the check and the connect (rebinding) cannot redirect a POST, while the
pool still keys connections by host name and TLS still sends and verifies the URL's host name.
(Rewriting the URL to the address, with a `Host` header and the `sni_hostname` extension, would
do the same for one request, but httpcore pools connections by the URL's host: two names on one
address would share TLS connections verified for only one of them.)

A refused target raises `RefusedTarget`, which no retry can change; a name that does not
resolve is an ordinary `httpx.ConnectError`. Proxy variables (HTTP_PROXY ...) are ignored: a
proxy would connect to addresses this check never saw.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from ipaddress import ip_address

import httpcore
import httpx

from dexec.webhook_targets import RefusedTarget, is_localhost_name, is_public

# How long each of a name's addresses but the last may take to accept a connection.
PER_ADDRESS_SECONDS = 1.0
# httpx's own defaults, for the connection pool built here in place of httpx's.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class TargetCheckingBackend(httpcore.AsyncNetworkBackend):
    """Resolves, judges every address, then connects to a judged address (asyncio only)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._sockets = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):  # the lookup counts towards the connect timeout
                addresses = await self._allowed_addresses(host, port)
                return await self._connect_any(addresses, port, local_address, socket_options)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc

    async def _allowed_addresses(self, host: str, port: int) -> list[str]:
        if not self._allow_private and is_localhost_name(host):
            raise RefusedTarget(f"{host}: a localhost name")
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:  # a DNS failure, like a refused connection, may pass
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        except UnicodeError as exc:  # an empty or over-long label: it never will resolve
            raise RefusedTarget(f"{host}: not a valid host name") from exc
        addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self._allow_private:
            refused = [a for a in addresses if not is_public(ip_address(a))]
            if refused:
                raise RefusedTarget(f"{host}: not a public address ({', '.join(refused)})")
        return addresses

    async def _connect_any(
        self,
        addresses: list[str],
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        """The first of the addresses that accepts, in the resolver's order of preference.

        Each but the last gets at most PER_ADDRESS_SECONDS, so one that drops packets (a broken
        IPv6 route is the usual case) does not use up the whole connect timeout."""
        for address in addresses[:-1]:
            try:
                async with asyncio.timeout(PER_ADDRESS_SECONDS):
                    return await self._sockets.connect_tcp(
                        address, port, local_address=local_address, socket_options=socket_options
                    )
            except (httpcore.ConnectError, TimeoutError):
                continue  # the next address
        return await self._sockets.connect_tcp(
            addresses[-1], port, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._sockets.sleep(seconds)


class TargetCheckingTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through `TargetCheckingBackend`."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        # httpx takes no network backend, so the pool it just built is replaced by one like it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=TargetCheckingBackend(allow_private),
        )


def webhook_client(timeout: float, allow_private: bool) -> httpx.AsyncClient:
    transport = TargetCheckingTransport(allow_private)
    return httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False)
