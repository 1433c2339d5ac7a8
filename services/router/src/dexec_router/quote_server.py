"""The router's request/reply subjects: quotes and the market catalogue, for the API.

Every router replica subscribes in the queue group QUOTE_QUEUE, so NATS hands each request to
one of them; any replica answers the same, since they share the seeded market. A NATS callback
runs one message at a time, and a quote waits on the venues (100-300 ms), so each quote runs
in its own task, up to `max_in_flight`; past that the replica answers ROUTER_BUSY at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from pydantic import ValidationError

from dexec.bus.subjects import MARKET_SUBJECT, QUOTE_QUEUE, QUOTE_SUBJECT
from dexec.market.catalog import describe
from dexec.market.quote_messages import QuoteError, QuoteReply, QuoteRequest
from dexec.market.tokens import UnknownToken, resolve_token
from dexec_router.planner import RoutePlanner, RoutingFailed

log = logging.getLogger(__name__)


class QuoteServer:
    def __init__(self, nc: Client, planner: RoutePlanner, max_in_flight: int) -> None:
        self._nc = nc
        self._planner = planner
        self._max_in_flight = max_in_flight
        self._subscriptions: list[Subscription] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        # Requests this replica answered: shows how replicas share them.
        self.answered = 0

    async def start(self) -> None:
        self._subscriptions = [
            await self._nc.subscribe(QUOTE_SUBJECT, queue=QUOTE_QUEUE, cb=self._on_quote),
            await self._nc.subscribe(MARKET_SUBJECT, queue=QUOTE_QUEUE, cb=self._on_market),
        ]

    async def stop(self) -> None:
        """Take no new requests, and answer the ones already taken."""
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions = []
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _on_quote(self, msg: Msg) -> None:
        if len(self._in_flight) >= self._max_in_flight:
            busy = QuoteError(code="ROUTER_BUSY", message="too many quotes at once", retryable=True)
            await self._respond(msg, QuoteReply(error=busy))
            return
        task = asyncio.create_task(self._answer(msg))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, msg: Msg) -> None:
        reply = await self.quote(msg.data)
        try:
            await self._respond(msg, reply)
        except NatsError as exc:  # the connection is closing: the API times out and says so
            log.warning("quote reply not sent: %s", exc)

    async def _respond(self, msg: Msg, reply: QuoteReply) -> None:
        await msg.respond(reply.model_dump_json(by_alias=True, exclude_none=True).encode())
        self.answered += 1

    async def quote(self, raw: bytes) -> QuoteReply:
        try:
            request = QuoteRequest.model_validate_json(raw)
            token_in = resolve_token(request.input_mint)
            token_out = resolve_token(request.output_mint)
        except (ValidationError, UnknownToken) as exc:
            return QuoteReply(error=QuoteError(code="BAD_REQUEST", message=str(exc)))
        try:
            route = await self._planner.plan(
                token_in,
                token_out,
                request.amount,
                request.slippage_bps,
                key=f"quote:{uuid.uuid4()}",
            )
        except RoutingFailed as exc:
            error = QuoteError(
                code=exc.code, message=exc.message, details=exc.details, retryable=exc.retryable
            )
            return QuoteReply(error=error)
        except Exception:
            log.exception("quote failed")
            return QuoteReply(error=QuoteError(code="INTERNAL_ERROR", message="quote failed"))
        log.debug("quoted %s → %s: %s", token_in.symbol, token_out.symbol, route.reason)
        return QuoteReply(quote=route)

    async def _on_market(self, msg: Msg) -> None:
        planner = self._planner
        info = describe(planner.market, planner.clock.now())
        await msg.respond(info.model_dump_json(by_alias=True).encode())
