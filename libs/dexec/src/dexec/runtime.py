"""Running a service until SIGINT/SIGTERM, on uvloop, with its logs, metrics and traces set up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import uvloop
from prometheus_client import start_http_server

from dexec import tracing
from dexec.heap import settle_startup_heap
from dexec.loop_lag import probing_loop_lag
from dexec.metrics import name_process
from dexec.telemetry import configure_logging

if TYPE_CHECKING:  # the router and executor serve no HTTP and never load uvicorn
    import uvicorn


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def serve_until_signalled(
    service: Service, on_started: Callable[[], object] = lambda: None
) -> None:
    """Start the service, call `on_started`, and run until SIGINT/SIGTERM, then stop it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        on_started()
        with probing_loop_lag():
            await stop.wait()
    finally:
        await service.stop()


def run_service(
    name: str, service: Service, log_level: str, metrics_address: tuple[str, int]
) -> None:
    """Entry point body of a worker service; metrics port 0 turns the endpoint off."""
    configure_logging(name, log_level)
    # The SDK's provider flushes what it holds at interpreter exit (atexit), after the drain.
    tracing.configure(name)
    name_process(name)
    host, port = metrics_address
    settle_startup_heap()

    def serve_metrics() -> None:
        # Only once the service is up (connected to NATS, its consumer running): the metrics
        # endpoint is the worker's readiness probe, and a pod still waiting for NATS must not
        # count as ready, nor a rollout take the working ones away for it.
        if port:
            start_http_server(port, host)

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve_until_signalled(service, serve_metrics))


# uvicorn's WebSocket implementation on the websockets library's Sans-I/O core: cheaper per
# frame than its legacy one, and it still holds a send while the client's TCP window is full
# (so a slow client is noticed and cut off); ours also lets go of the connection then (an
# import string, so the router and executor never load uvicorn).
WS_IMPLEMENTATION = "dexec.ws_protocol:ResettingWebSocketProtocol"


def http_config(
    app: object,
    host: str,
    port: int,
    *,
    ws_ping_interval: float = 20.0,
    forwarded_allow_ips: str | None = None,
) -> uvicorn.Config:
    """How an HTTP service (api, notifier) is served: uvloop, httptools, no access log.

    `forwarded_allow_ips`: the proxies whose `X-Forwarded-For` names the client (None:
    uvicorn's default, $FORWARDED_ALLOW_IPS or else 127.0.0.1 and ::1)."""
    import uvicorn

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws=WS_IMPLEMENTATION,
        ws_ping_interval=ws_ping_interval,
        ws_ping_timeout=ws_ping_interval,
        lifespan="on",
        forwarded_allow_ips=forwarded_allow_ips,
        log_config=None,
        access_log=False,
    )


def run_http(name: str, log_level: str, config: uvicorn.Config) -> None:
    """Entry point body of an HTTP service: serve `config` until SIGINT/SIGTERM."""
    import uvicorn

    configure_logging(name, log_level)
    tracing.configure(name)
    name_process(name)
    settle_startup_heap()
    uvicorn.Server(config).run()
