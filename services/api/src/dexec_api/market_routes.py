"""`GET /api/quote`, `/api/tokens`, `/api/venues`: asked of the router over NATS request/reply.

The router owns the market (its file, its seed, the venues' state), so the API keeps no copy:
any router replica answers (queue group), and a quote is exactly what an order placed now would
be routed on. Input is checked here first, with the same codes as an order.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BeforeValidator, ValidationError

from dexec.bus.subjects import MARKET_SUBJECT, QUOTE_SUBJECT
from dexec.market.quote_messages import MarketInfo, QuoteReply, QuoteRequest
from dexec.market.tokens import BadAmount, UnknownToken, resolve_token, to_base_units
from dexec_api.errors import ApiError
from dexec_api.order_request import plain_number
from dexec_api.settings import ApiSettings
from dexec_api.tenancy import known_tenant

# The router's own venue timeout (2 s by default) plus room to compute and answer.
ROUTER_REPLY_TIMEOUT_SECONDS = 5.0  # above the router's longest quote timeout (4 s)
RETRY_AFTER = {"Retry-After": "1"}
# A routing failure's code → the HTTP status it answers with.
QUOTE_ERROR_STATUS = {
    "NO_ROUTE": 422,
    "BAD_REQUEST": 422,
    "QUOTES_UNAVAILABLE": 503,
    "ROUTER_BUSY": 503,
}


async def ask_router(nc: Client, subject: str, payload: bytes) -> bytes:
    try:
        msg = await nc.request(subject, payload, timeout=ROUTER_REPLY_TIMEOUT_SECONDS)
    except NoRespondersError as exc:
        raise ApiError(
            503, "ROUTER_UNAVAILABLE", "no router is running", None, RETRY_AFTER
        ) from exc
    except (NatsTimeoutError, TimeoutError) as exc:
        raise ApiError(
            503, "ROUTER_UNAVAILABLE", "the router did not answer in time", None, RETRY_AFTER
        ) from exc
    except NatsError as exc:
        raise ApiError(503, "BUS_UNAVAILABLE", f"NATS: {exc}", None, RETRY_AFTER) from exc
    return msg.data


def market_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(tags=["market"])

    @router.get("/api/quote")
    async def quote(
        request: Request,
        token_in: Annotated[str, Query(alias="tokenIn", min_length=1, max_length=64)],
        token_out: Annotated[str, Query(alias="tokenOut", min_length=1, max_length=64)],
        amount: Annotated[str, Query(min_length=1, max_length=64)],
        slippage_bps: Annotated[
            int | None,
            Query(alias="slippageBps", ge=0, le=10_000),
            BeforeValidator(plain_number),
        ] = None,
    ) -> dict[str, Any]:
        """The best route for selling `amount` (token units, e.g. `1.5`) of `tokenIn`.

        Jupiter's quote fields (`inAmount`, `outAmount`, `otherAmountThreshold`,
        `priceImpactPct`, `routePlan`, `contextSlot`), amounts in base units, plus every
        candidate the router considered and why it chose this one.
        """
        request.app.state.limit.admit(request, known_tenant(request))
        try:
            token_a, token_b = resolve_token(token_in), resolve_token(token_out)
        except UnknownToken as exc:
            raise ApiError(
                422, "UNKNOWN_TOKEN", str(exc), {"tokens": [token_in, token_out]}
            ) from exc
        if token_a == token_b:
            raise ApiError(422, "SAME_TOKEN", "tokenIn and tokenOut must differ")
        try:
            amount_in = to_base_units(token_a, amount)
        except BadAmount as exc:
            raise ApiError(422, "INVALID_AMOUNT", str(exc)) from exc
        slippage = settings.default_slippage_bps if slippage_bps is None else slippage_bps
        ask = QuoteRequest(
            input_mint=token_a.mint,
            output_mint=token_b.mint,
            amount=amount_in,
            slippage_bps=slippage,
        )
        raw = await ask_router(
            request.app.state.nc, QUOTE_SUBJECT, ask.model_dump_json(by_alias=True).encode()
        )
        try:
            reply = QuoteReply.model_validate_json(raw)
        except ValidationError as exc:
            raise ApiError(502, "BAD_ROUTER_REPLY", "the router's answer was not a quote") from exc
        if reply.quote is not None:
            body = reply.quote.model_dump(mode="json", by_alias=True)
            return {"tokenIn": token_a.symbol, "tokenOut": token_b.symbol, **body}
        error = reply.error
        if error is None:
            raise ApiError(502, "BAD_ROUTER_REPLY", "the router answered neither quote nor error")
        headers = RETRY_AFTER if error.retryable else None
        status = QUOTE_ERROR_STATUS.get(error.code, 502)
        raise ApiError(status, error.code, error.message, error.details or None, headers)

    async def market_info(request: Request) -> MarketInfo:
        request.app.state.limit.admit(request, known_tenant(request))
        raw = await ask_router(request.app.state.nc, MARKET_SUBJECT, b"")
        try:
            return MarketInfo.model_validate_json(raw)
        except ValidationError as exc:
            raise ApiError(
                502, "BAD_ROUTER_REPLY", "the router's answer was not a catalogue"
            ) from exc

    @router.get("/api/tokens")
    async def tokens(request: Request) -> dict[str, Any]:
        """Tokens the market trades: mint, decimals, reference price, the venues with a pool."""
        info = await market_info(request)
        return info.model_dump(
            mode="json", by_alias=True, include={"market", "context_slot", "tokens"}
        )

    @router.get("/api/venues")
    async def venues(request: Request) -> dict[str, Any]:
        """Venues and their pools: kind, pair, fee, DLMM bin step, liquidity."""
        info = await market_info(request)
        return info.model_dump(
            mode="json", by_alias=True, include={"market", "context_slot", "venues"}
        )

    return router
