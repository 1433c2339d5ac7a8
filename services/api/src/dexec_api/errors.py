"""Every error leaves the API as `{"error": {"code", "message", "details"}}` with a 4xx/5xx."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Route

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def validation_details(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Each error with the field it is about; `null` for one about the body as a whole."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body") or None,
            "message": err["msg"],
        }
        for err in exc.errors()
    ]


def allowed_methods(request: Request) -> str:
    """What a 405's `Allow` names: the methods of every route for the request's path.

    Starlette names only the first route that matches the path, and two routes share
    `/api/orders` (GET and POST). A route written for exactly this path outranks one whose
    pattern takes it as a parameter: `/api/orders/execute` is not an order id. Routes of
    included routers (health, market, dashboard) count too: FastAPI keeps them behind one
    entry of `app.routes`, which `iter_route_contexts` opens. Every path that takes GET takes
    HEAD as well (`dexec_api.head_requests.HeadAsGet`), so HEAD is named wherever GET is.
    """
    path = request.scope["path"]
    routes = [
        r
        for r in iter_route_contexts(request.app.routes)
        if isinstance(r.original_route, Route) and r.path_regex.match(path)
    ]
    literal = [r for r in routes if r.path == path]
    methods = set().union(*(r.methods or () for r in literal or routes))
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "VALIDATION_ERROR", "invalid request", validation_details(exc))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        code = "NOT_FOUND" if exc.status_code == 404 else f"HTTP_{exc.status_code}"
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "INTERNAL_ERROR", "internal error")
