"""HEAD requests, answered on every GET route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class HeadAsGet:
    """HEAD answered as GET is, without the body (RFC 9110 §9.3.2), on every GET route.

    FastAPI's GET routes refuse HEAD with a 405 (Starlette's plain routes take it). Declaring
    each with `methods=["GET", "HEAD"]` would add a `head` operation, with a duplicate
    operationId, per route to /openapi.json, and would have to reach into the routers this app
    includes (health, market, dashboard). Here the app is handed a copy of the scope saying
    GET: the same route runs with the same dependencies (API key, rate limit), so a HEAD gets
    GET's status and headers, Content-Length included, and no path or auth check is skipped.
    The body is not sent: uvicorn reads the method from its own scope, still HEAD, and drops
    it (a copy, not an edit in place, for that reason). Installed inside `RequestMetrics`,
    which so labels the request HEAD; the route the router chose is copied back for its
    `route` label.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send)
        finally:
            if "route" in as_get:
                scope["route"] = as_get["route"]
