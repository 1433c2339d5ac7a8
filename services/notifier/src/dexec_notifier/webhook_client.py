"""The webhooks' HTTP client, which connects only to addresses `dexec.webhook_targets` allows.

The check sits where each connection is opened, in httpcore's network backend: the URL's host
is resolved once, every address it resolves to is judged (one private address refuses the
target), and the socket is connected to one of those very addresses. So DNS answering
differently between the check and the connect (rebinding) cannot redirect a POST, while the
pool still keys connections by host name and TLS still sends and verifies the URL's host name.
(Rewriting the URL to the address, with a `Host` header and the `sni_hostname` extension, would
do the same for one request, but httpcore pools connections by the URL's host: two names on one
address would share TLS connections verified for only one of them.)

Names are resolved with c-ares (aiodns), not the system's getaddrinfo: on uvloop that runs on
libuv's four worker threads, and a lookup cancelled by the POST's timeout keeps its thread
until the system resolver gives up (10 s and more), so a few URLs on a name server that never
answers would stall every other webhook, and the service's own connections, behind them.
A c-ares lookup holds no thread: a POST that gives up on it leaves it to time out on its
own. Numeric hosts are read as addresses without a lookup, in every form the system accepts
(`2130706433` is 127.0.0.1).

A refused target raises `RefusedTarget`, which no retry can change; a name that does not
resolve is an ordinary `httpx.ConnectError`. Proxy variables (HTTP_PROXY ...) are ignored: a
proxy would connect to addresses this check never saw.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, ip_address
from typing import Any

import aiodns
import httpcore
import httpx
import pycares

from dexec.webhook_targets import RefusedTarget, is_localhost_name, is_public

# How long each of a name's addresses but the last may take to accept a connection.
PER_ADDRESS_SECONDS = 1.0
# httpx's own defaults, for the connection pool built here in place of httpx's.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class TargetCheckingBackend(httpcore.AsyncNetworkBackend):
    """Resolves, judges every address, then connects to a judged address (asyncio only).

    `nameservers` ("host:port", …) replaces the system's resolver configuration (tests)."""

    def __init__(self, allow_private: bool, nameservers: Sequence[str] | None = None) -> None:
        self._allow_private = allow_private
        self._sockets = httpcore.AnyIOBackend()
        self._nameservers = nameservers
        self._resolver: aiodns.DNSResolver | None = None  # made in the loop that uses it

    async def aclose(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

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
        addresses = numeric_address(host) or await self._resolve(host, port)
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self._allow_private:
            refused = [a for a in addresses if not is_public(ip_address(a))]
            if refused:
                raise RefusedTarget(f"{host}: not a public address ({', '.join(refused)})")
        return addresses

    async def _resolve(self, host: str, port: int) -> list[str]:
        if self._resolver is None:
            self._resolver = aiodns.DNSResolver(nameservers=self._nameservers)
        try:
            found = await self._resolver.getaddrinfo(host, port=port, type=socket.SOCK_STREAM)
        except aiodns.error.DNSError as exc:
            code = exc.args[0] if exc.args else None
            if code == pycares.errno.ARES_EBADNAME:  # an empty or over-long label: never valid
                raise RefusedTarget(f"{host}: not a valid host name") from exc
            # Not found, no answer in time: DNS may come back, as a refused connection may.
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        # c-ares gives addresses as bytes; order kept, repeats (one per socket type) dropped.
        return list(dict.fromkeys(node.addr[0].decode() for node in found.nodes))

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


def numeric_address(host: str) -> list[str]:
    """The address a numeric host names (`[]` for a name), as the system's getaddrinfo reads
    it: IPv6, dotted quads, and the older IPv4 forms inet_aton takes (`127.1`, `0x7f.1`)."""
    try:
        return [str(ip_address(host))]
    except ValueError:
        pass
    try:
        return [str(IPv4Address(socket.inet_aton(host)))]
    except (OSError, UnicodeError, ValueError):
        return []


class TargetCheckingTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that connects through `TargetCheckingBackend`."""

    def __init__(self, allow_private: bool, nameservers: Sequence[str] | None = None) -> None:
        super().__init__()
        self._backend = TargetCheckingBackend(allow_private, nameservers)
        # httpx takes no network backend, so the pool it just built is replaced by one like it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=self._backend,
        )

    async def aclose(self) -> None:
        await super().aclose()
        await self._backend.aclose()

    async def __aexit__(self, *exc: Any) -> None:  # `async with client` ends here, not in aclose
        await super().__aexit__(*exc)
        await self._backend.aclose()


def webhook_client(
    timeout: float, allow_private: bool, nameservers: Sequence[str] | None = None
) -> httpx.AsyncClient:
    transport = TargetCheckingTransport(allow_private, nameservers)
    return httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False)
