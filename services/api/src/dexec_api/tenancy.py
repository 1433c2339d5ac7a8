"""Who is calling: the tenant of the request's API key, when API keys are on."""

from __future__ import annotations

from fastapi import Request

from dexec.auth import Tenants
from dexec_api.errors import ApiError

API_KEY_HEADER = "X-API-Key"


def api_key_of(request: Request) -> str | None:
    key = request.headers.get(API_KEY_HEADER)
    if key is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
    return key


async def caller_tenant(request: Request) -> str | None:
    """The caller's tenant; None when API keys are off. Unknown keys are a 401."""
    if not request.app.state.tenants.enabled:
        return None
    tenant = known_tenant(request)
    if tenant is None:
        raise ApiError(
            401,
            "UNAUTHORIZED",
            f"a valid API key is required ({API_KEY_HEADER}, or Authorization: Bearer)",
            headers={"WWW-Authenticate": 'Bearer realm="dexec"'},
        )
    return tenant


def known_tenant(request: Request) -> str | None:
    """The tenant of a valid API key if the request has one (market data needs none)."""
    tenants: Tenants = request.app.state.tenants
    return tenants.resolve(api_key_of(request)) if tenants.enabled else None
