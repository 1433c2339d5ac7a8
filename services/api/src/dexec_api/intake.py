"""Taking in an order: admission (rate limit, backpressure), validation, idempotency, commit.

Everything that can refuse an order runs before anything is written, so a refused order
leaves no trace but its metrics (an Idempotency-Key claimed for an order the bus then refuses
is released). The commit is the `pending` publish acked by JetStream.

A submit is the root span of the order's trace (`dexec.tracing`): the `pending` it publishes
carries the context on to the router, executor and notifier.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from opentelemetry.trace import StatusCode

from dexec import tracing
from dexec.bus.history import read_latest_events
from dexec.bus.publisher import build_event
from dexec.orders.events import OrderSpec
from dexec.orders.states import EventType, OrderStatus
from dexec_api.backpressure import RouterBacklog
from dexec_api.body import read_json_body
from dexec_api.commit import CommitUncertain, commit_event
from dexec_api.errors import ApiError
from dexec_api.idempotency import (
    Claim,
    ClaimLost,
    ClaimUnknown,
    IdempotencyConflict,
    IdempotencyStore,
)
from dexec_api.metrics import ORDERS_ACCEPTED, ORDERS_REJECTED
from dexec_api.order_request import parse_json_object, parse_order
from dexec_api.rate_limit import ClientLimit, retry_after_header
from dexec_api.settings import ApiSettings

# Rounds of claim and replay while other requests with the key release or take over its claim.
PLACE_ATTEMPTS = 5


@dataclass(frozen=True)
class Accepted:
    order_id: str
    spec: OrderSpec
    # Whether this request's publish stored the order (202), or found it stored (200).
    created: bool


class OrderIntake:
    def __init__(
        self,
        settings: ApiSettings,
        js: JetStreamContext,
        idempotency: IdempotencyStore,
        backlog: RouterBacklog,
        limit: ClientLimit,
    ) -> None:
        self._settings = settings
        self._js = js
        self._idempotency = idempotency
        self._backlog = backlog
        self._limit = limit

    async def submit(
        self, request: Request, idempotency_key: str | None, tenant: str | None
    ) -> Accepted:
        with tracing.root_span("dexec.api", "submit order") as span:
            try:
                accepted = await self._submit(request, idempotency_key, tenant)
            except ApiError as exc:
                ORDERS_REJECTED.labels(exc.code.lower()).inc()
                if span.is_recording():
                    span.set_attribute("http.response.status_code", exc.status)
                    if exc.status >= 500:  # ours, not the client's
                        span.set_status(StatusCode.ERROR, exc.code)
                raise
            if span.is_recording():
                span.set_attributes(
                    {"dexec.order_id": accepted.order_id, "dexec.replayed": not accepted.created}
                )
        if accepted.created:
            ORDERS_ACCEPTED.inc()
        return accepted

    async def _submit(
        self, request: Request, idempotency_key: str | None, tenant: str | None
    ) -> Accepted:
        self._limit.admit(request, tenant)
        raw = await read_json_body(request, self._settings.max_body_bytes)
        spec = parse_order(
            parse_json_object(raw),
            self._settings.default_slippage_bps,
            tenant,
            allow_private_webhook_targets=self._settings.webhook_allow_private_targets,
        )
        key = _checked_key(idempotency_key)
        try:
            if key is None:
                self._refuse_if_overloaded()
                order_id = str(uuid.uuid4())
                return Accepted(order_id, spec, await self._commit(order_id, spec))
            return await self._place(spec.model_copy(update={"idempotency_key": key}), key)
        except NatsError as exc:  # certainly not stored: the order does not exist
            raise ApiError(
                503,
                "BUS_UNAVAILABLE",
                "the order was not accepted; retry (with the same Idempotency-Key)",
                headers=retry_after_header(1),
            ) from exc

    def _refuse_if_overloaded(self) -> None:
        if self._backlog.overloaded:
            raise _overloaded(self._backlog.size)

    async def _place(self, spec: OrderSpec, key: str) -> Accepted:
        """The order under `key`: placed here if the key is new, else the one it names.

        A key that has a claim is answered whatever the backlog (the order exists, or is being
        placed); only a new order is refused by backpressure, and before it claims the key."""
        for _ in range(PLACE_ATTEMPTS):
            claim = await self._claim(spec, key)
            try:
                if claim.created:
                    return await self._commit_claimed(claim, spec)
                return await self._replay(claim, spec)
            except ClaimLost:
                continue  # another request released or took over the claim: read it again
        raise _key_uncertain()

    async def _claim(self, spec: OrderSpec, key: str) -> Claim:
        try:
            if not self._backlog.overloaded:
                return await self._idempotency.claim(spec.tenant, key, spec, str(uuid.uuid4()))
            # Looked up, not claimed: a new order is refused, and leaves the key free.
            found = await self._idempotency.existing(spec.tenant, key, spec)
        except IdempotencyConflict as exc:
            raise ApiError(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used with a different order",
            ) from exc
        except ClaimUnknown as exc:  # an order may exist under the key
            raise _key_uncertain() from exc
        if found is None:
            raise _overloaded(self._backlog.size)
        return found

    async def _replay(self, claim: Claim, spec: OrderSpec) -> Accepted:
        """A key claimed before: its order, published here if the stream does not hold its
        `pending` (the first request died between its claim and its publish, or is still
        publishing). Past the duplicate window a copy would be stored twice, so the stream is
        asked first. The order may exist whatever fails here, so a failure names it
        (COMMIT_UNCERTAIN); ClaimLost if another request changed the claim meanwhile."""
        order_id = claim.order_id
        try:
            pending = await read_latest_events(self._js, order_id, [EventType.PENDING])
        except NatsError as exc:
            raise _uncertain(order_id) from exc
        if pending:
            return Accepted(order_id, spec, created=False)
        try:
            # First, so that the request that made the claim can no longer release it.
            await self._idempotency.take_over(claim)
            stored_here = await self._commit(order_id, spec)
        except NatsError as exc:
            # Not released even if certainly not stored here: the request that made the claim
            # may still be publishing the order. A retry with the key places it if not.
            raise _uncertain(order_id) from exc
        return Accepted(order_id, spec, stored_here)

    async def _commit_claimed(self, claim: Claim, spec: OrderSpec) -> Accepted:
        """Commit the order of a claim made here. If the stream certainly did not store it, the
        key is released, so that it does not name an order that does not exist; unless another
        request has taken the claim over meanwhile and may be placing the order."""
        try:
            stored_here = await self._commit(claim.order_id, spec)
        except NatsError as refused:
            try:
                released = await self._idempotency.release(claim)
            except NatsError as exc:
                # The claim stays and names no order: not "not accepted" (BUS_UNAVAILABLE
                # promises a free key), but "retry with the key", which places it (`_replay`).
                raise _key_uncertain() from exc
            if not released:
                raise _uncertain(claim.order_id) from refused
            raise
        return Accepted(claim.order_id, spec, stored_here)

    async def _commit(self, order_id: str, spec: OrderSpec) -> bool:
        """Publish `pending` (`dexec_api.commit`): the stream's ack is the order's commit point.
        Whether this request's publish stored it (not another's with the same key)."""
        event = build_event(order_id, EventType.PENDING, spec)
        try:
            committed = await commit_event(self._js, event, self._settings.commit_timeout_seconds)
        except CommitUncertain as exc:
            raise _uncertain(order_id) from exc
        return committed.stored_here


def _checked_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is None:
        return None
    key = idempotency_key.strip()
    if not key or len(key) > 255:
        raise ApiError(422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key: 1 to 255 chars")
    return key


def _overloaded(backlog: int) -> ApiError:
    return ApiError(
        503,
        "OVERLOADED",
        "the engine is behind; the order was not accepted, retry later",
        {"backlog": backlog},
        retry_after_header(1),
    )


def _uncertain(order_id: str) -> ApiError:
    return ApiError(
        503,
        "COMMIT_UNCERTAIN",
        "the bus did not confirm the order, and it may still be accepted: resubmit with the same"
        " Idempotency-Key (which returns this order if it exists), or look it up first",
        {"orderId": order_id, "links": {"self": f"/api/orders/{order_id}"}},
        retry_after_header(1),
    )


def _key_uncertain() -> ApiError:
    return ApiError(
        503,
        "IDEMPOTENCY_KEY_UNCERTAIN",
        "the idempotency store did not answer, so an order may exist under this Idempotency-Key:"
        " resubmit with the same key (which returns that order if it exists)",
        headers=retry_after_header(1),
    )


def accepted_body(accepted: Accepted, public_ws_url: str) -> dict[str, Any]:
    order_id, spec = accepted.order_id, accepted.spec
    return {
        "orderId": order_id,
        "status": str(OrderStatus.PENDING),
        "tokenIn": spec.token_in,
        "tokenOut": spec.token_out,
        "amountIn": str(spec.amount_in),
        "slippageBps": spec.slippage_bps,
        "links": {
            "self": f"/api/orders/{order_id}",
            "stream": f"{public_ws_url}/ws/orders/{order_id}",
        },
    }
