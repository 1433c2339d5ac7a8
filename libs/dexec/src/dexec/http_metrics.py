"""HTTP metrics for the api and the notifier: request durations by route template, and /metrics.

A pure ASGI middleware (no per-request Request object): it times each HTTP request and labels
it with the path template of the route that served it (`/api/orders/{order_id}`, which the
router leaves in `scope["route"]`), never the raw path, so an order id cannot become a label
value. Requests no route matched are `unmatched`. WebSocket sessions are not timed here; the
notifier counts them itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from prometheus_client import make_asgi_app

from dexec.metrics import HTTP_REQUEST_DURATION

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"
# Any other method a client makes up is "OTHER": label values stay a fixed set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self._service = service
        # (route, method, status) -> histogram child: a dict lookup per request.
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before it answers, the server answers 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self._child(scope, status).observe(time.perf_counter() - started)

    def _child(self, scope: Scope, status: int) -> Any:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method = scope["method"]
        key = (template, method if method in METHODS else "OTHER", status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HTTP_REQUEST_DURATION.labels(self._service, *key)
        return child


class MetricsEndpoint:
    """prometheus_client's ASGI exposition as a class, so Starlette mounts it as an ASGI app
    on an exact route (`/metrics`, no redirect to `/metrics/`)."""

    def __init__(self) -> None:
        self._app = make_asgi_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class _App(Protocol):
    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None: ...
    def add_route(self, path: str, route: Any, *args: Any, **kwargs: Any) -> None: ...


def instrument(app: _App, service: str) -> None:
    """Time the app's requests, and serve the process's metrics to GET (and HEAD) at /metrics
    and /metrics/; other methods get the app's 405, other paths below it its 404."""
    app.add_middleware(RequestMetrics, service=service)
    endpoint = MetricsEndpoint()
    for path in ("/metrics", "/metrics/"):
        app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)
