"""The four real services, run in the test's event loop against real NATS and Postgres.

Each service is the production object (the API's and notifier's ASGI apps served by uvicorn
on a real port, the router's and executor's services), so tests exercise real HTTP,
WebSocket, JetStream and SQL. Running them in-process lets each test choose its settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dexec.runtime import http_config
from dexec_api.app import create_app as create_api
from dexec_api.settings import ApiSettings
from dexec_executor.service import ExecutorService
from dexec_executor.settings import ExecutorSettings
from dexec_notifier.app import create_app as create_notifier
from dexec_notifier.settings import NotifierSettings
from dexec_router.service import RouterService
from dexec_router.settings import RouterSettings
from dexec_tools.servers import NatsServer, free_port
from tests.support.waiting import eventually

TEST_DEFAULTS: dict[str, Any] = {
    "latency_mode": "zero",
    "retry_backoff_base_seconds": 0.2,
    "router_metrics_port": 0,
    "executor_metrics_port": 0,
    "log_level": "WARNING",
}

# A service that takes longer than this to stop is stuck.
STOP_TIMEOUT_SECONDS = 60.0


def service_values(nats_url: str, database_url: str, **overrides: Any) -> dict[str, Any]:
    """The settings a test's services run with: TEST_DEFAULTS, the URLs, then `overrides`."""
    return {**TEST_DEFAULTS, "nats_url": nats_url, "database_url": database_url, **overrides}


async def start_executor(nats_url: str, database_url: str, **overrides: Any) -> ExecutorService:
    """An executor of no stack (its caller stops it), for a test to reach into."""
    executor = ExecutorService(
        ExecutorSettings(**service_values(nats_url, database_url, **overrides))
    )
    await executor.start()
    return executor


async def start_router(nats_url: str, database_url: str, **overrides: Any) -> RouterService:
    """A router of no stack (its caller stops it)."""
    router = RouterService(RouterSettings(**service_values(nats_url, database_url, **overrides)))
    await router.start()
    return router


GRACEFUL_STOP_SECONDS = 15


async def _serve(
    app: object, port: int, forwarded_allow_ips: str | None = None
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = http_config(app, "127.0.0.1", port, forwarded_allow_ips=forwarded_allow_ips)
    # A stop waits for open requests and sockets, but not forever: a connection a test left
    # half-open must fail that test's teardown late, not hang the whole run (CI once did).
    config.timeout_graceful_shutdown = GRACEFUL_STOP_SECONDS
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        await asyncio.sleep(0.01)
    return server, task


def _stopper(server: uvicorn.Server, task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def stop() -> None:
        server.should_exit = True
        await task

    return stop


@dataclass
class Stack:
    api_url: str
    ws_url: str
    nats_url: str
    database_url: str
    http: httpx.AsyncClient
    db: AsyncEngine
    ws_urls: list[str] = field(default_factory=list)
    routers: list[RouterService] = field(default_factory=list)
    executors: list[ExecutorService] = field(default_factory=list)
    _stoppers: list[Any] = field(default_factory=list)

    async def submit(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.http.post(
            f"{self.api_url}/api/orders/execute", json=body, headers=headers
        )

    async def watch(
        self, order_id: str, timeout: float = 30.0, ws_url: str | None = None
    ) -> list[dict[str, Any]]:
        """Every message the notifier sends for the order, until it closes the socket."""
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            async with websockets.connect(f"{ws_url or self.ws_url}/ws/orders/{order_id}") as ws:
                with contextlib.suppress(websockets.ConnectionClosedOK):
                    async for raw in ws:
                        messages.append(orjson.loads(raw))
        return messages

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.db.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.db.connect() as conn:
            return list(await conn.execute(text(sql), params))

    async def stop(self) -> None:
        """Stop every part, even when one fails to stop; then raise the first failure."""
        failures: list[BaseException] = []
        for stop in reversed(self._stoppers):
            try:
                await asyncio.wait_for(stop(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                # Say what the loop is stuck on, instead of a bare pytest-timeout much later.
                for task in asyncio.all_tasks():
                    task.print_stack(file=sys.stderr)
                message = f"{stop} did not finish within {STOP_TIMEOUT_SECONDS}s"
                failures.append(TimeoutError(message))
            except Exception as exc:
                failures.append(exc)
        await self.http.aclose()
        await self.db.dispose()
        if failures:
            raise failures[0]


async def start_stack(
    nats_url: str,
    database_url: str,
    *,
    replicas: int = 1,
    without: frozenset[str] = frozenset(),
    **overrides: Any,
) -> Stack:
    """The api plus `replicas` of each other service (minus those named in `without`)."""
    values = service_values(nats_url, database_url, **overrides)
    api_port = free_port()
    notifier_ports = [free_port() for _ in range(replicas)]
    ws_urls = [f"ws://127.0.0.1:{port}" for port in notifier_ports]
    stack = Stack(
        api_url=f"http://127.0.0.1:{api_port}",
        ws_url=ws_urls[0],
        nats_url=nats_url,
        database_url=database_url,
        http=httpx.AsyncClient(timeout=30),
        db=create_async_engine(database_url),
        ws_urls=ws_urls,
    )
    try:
        for _ in range(replicas):
            if "router" not in without:
                stack.routers.append(RouterService(RouterSettings(**values)))
            if "executor" not in without:
                stack.executors.append(ExecutorService(ExecutorSettings(**values)))
        for service in (*stack.routers, *stack.executors):
            await service.start()
            stack._stoppers.append(service.stop)
        api = ApiSettings(**values, public_ws_url=ws_urls[0])
        apps = [(create_api(api), api_port, api.forwarded_allow_ips)]
        if "notifier" not in without:
            apps += [(create_notifier(NotifierSettings(**values)), p, None) for p in notifier_ports]
        for app, port, forwarded_allow_ips in apps:
            server, task = await _serve(app, port, forwarded_allow_ips)
            stack._stoppers.append(_stopper(server, task))
    except BaseException:
        await stack.stop()
        raise
    return stack


async def stop_nats(server: NatsServer, stack: Stack) -> None:
    """Stop a test's own NATS server, and wait until the stack's API has noticed."""
    await asyncio.to_thread(server.stop)

    async def api_not_ready() -> bool:
        response = await stack.http.get(f"{stack.api_url}/readyz")
        return response.status_code == 503 and response.json()["nats"] is False

    await eventually(api_not_ready, what="the API to report NATS gone on /readyz")


async def start_nats_again(server: NatsServer, stack: Stack) -> None:
    """Start a test's own NATS server again (a no-op if it runs), and wait until the stack's
    API is back on it: an API stopped while it reconnects cannot drain its connection."""
    await asyncio.to_thread(server.start)

    async def api_ready() -> bool:
        return (await stack.http.get(f"{stack.api_url}/readyz")).status_code == 200

    await eventually(api_ready, what="the API back on NATS")


@contextlib.asynccontextmanager
async def api_alone(
    server: NatsServer, database_url: str, **overrides: Any
) -> AsyncIterator[Stack]:
    """Only the API, on a test's own NATS server that the test may stop: started again at the
    end (`start_nats_again`) before the API stops."""
    stack = await start_stack(
        server.url,
        database_url,
        without=frozenset({"router", "executor", "notifier"}),
        **overrides,
    )
    try:
        yield stack
    finally:
        try:
            await start_nats_again(server, stack)
        finally:
            await stack.stop()
