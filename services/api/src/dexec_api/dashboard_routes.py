"""The dashboard: a static page at `/`, its assets under `/dashboard/`, and `/api/config`.

The page is plain HTML, CSS and JavaScript shipped inside the package (`dexec_api/dashboard/`),
with no build step and nothing loaded from another origin except the notifier's WebSocket.
It submits orders to this API and watches them on the notifier, whose public address it reads
from `/api/config`.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dexec_api.errors import ApiError

router = APIRouter()

_DASHBOARD = files("dexec_api").joinpath("dashboard")
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Everything comes from this origin; the only other place the page talks to is the notifier's
# WebSocket, whose address is configurable, so any ws:/wss: origin is allowed.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    # Small files read from the package on each request; a restart never serves stale ones.
    "Cache-Control": "no-cache",
}


def _asset(name: str, media_type: str) -> Response:
    return Response(_DASHBOARD.joinpath(name).read_bytes(), media_type=media_type, headers=_HEADERS)


@router.get("/", include_in_schema=False)
async def dashboard() -> Response:
    return _asset("index.html", "text/html; charset=utf-8")


@router.get("/dashboard/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "NOT_FOUND", f"no dashboard asset {name!r}")
    return _asset(name, media_type)


@router.get("/api/config")
async def client_config(request: Request) -> dict[str, Any]:
    """What a browser client needs to know: where the notifier's WebSockets are."""
    settings = request.app.state.settings
    return {"wsUrl": settings.public_ws_url}
