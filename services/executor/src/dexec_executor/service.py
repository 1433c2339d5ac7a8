"""The executor: consumes `routed`, builds, signs, submits and confirms the swap.

Write-ahead (DESIGN §5): `submitted` is in the stream before the transaction is sent. On a
redelivery the executor reads the order's events and resumes the signature it already
published; it signs anew only when the chain records that it expired without landing
(`SimulatedChain.settle_expired`): a send of it still in flight can then no longer land.

A delivery that stopped answering (paused, or cut off from NATS) past the ack wait is
redelivered while it may still wake up, so two deliveries can hold an order at once. Each
reads the order's latest events and publishes everything after them through a fence
(`dexec.bus.fence`): `building`, the `submitted` it writes ahead of every send (a resumed
signature is submitted again, for the new attempt), and the worker's `retrying` or `failed`.
So whichever of the two publishes second is refused, and stops (`Superseded`) instead of
failing an order the other is confirming, or signing beside one that already failed.
`confirmed` is never refused: the chain's outcome is the truth.

Metrics: building → submitted (this attempt's build and sign) and submitted → confirmed (from
the latest submission of the signature that landed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind

from dexec import tracing
from dexec.bus.connection import connect, disconnect, ensure_stream
from dexec.bus.errors import PermanentError, StageError, Superseded, TransientError
from dexec.bus.fence import OrderFence, emit_fenced
from dexec.bus.history import StoredEvent, read_latest_events, read_order_events
from dexec.bus.publisher import SubjectMoved, emit
from dexec.bus.subjects import EXECUTOR_CONSUMER
from dexec.bus.worker import ConsumerWorker, Delivery, Stage
from dexec.market.chain import ChainError, Outcome, SignedSwap, SimulatedChain
from dexec.market.market import Market
from dexec.metrics import STAGE_DURATION, StageName
from dexec.orders.events import Execution, OrderEvent, Submission, SwapPlan
from dexec.orders.states import TERMINAL_EVENTS, EventType, OrderStage, OrderStatus
from dexec_executor.settings import ExecutorSettings

log = logging.getLogger(__name__)

# What an earlier delivery may have left after `routed`: its end, its latest submission and
# retry. With the routed event's own sequence, the highest of theirs is the fence.
AFTER_ROUTED = (
    EventType.BUILDING,
    EventType.SUBMITTED,
    EventType.RETRYING,
    EventType.CONFIRMED,
    EventType.FAILED,
)
# Every kind's latest event, read when an event of another kind turns out to follow `routed`
# (a router delivery that ran late) and the fence built from AFTER_ROUTED was refused.
LATEST_OF_EACH = tuple(EventType)
# Tries to store `building` through the fence: a first delivery's unread, then after a read
# of AFTER_ROUTED, then of every kind, and one more for an event stored meanwhile.
ANNOUNCE_TRIES = 4
# Execution is done once the order has ended; `handle` reads that on every delivery, so the
# worker need not read it first.
EXECUTOR_STAGE = Stage(
    OrderStage.EXECUTOR,
    OrderStatus.BUILDING,
    done_by=TERMINAL_EVENTS,
    guard=EventType.CONFIRMED,
    handler_checks_done=True,
)
SCOPE = "dexec.executor"

BUILDING_TO_SUBMITTED = STAGE_DURATION.labels(StageName.BUILDING_TO_SUBMITTED)
SUBMITTED_TO_CONFIRMED = STAGE_DURATION.labels(StageName.SUBMITTED_TO_CONFIRMED)


@dataclass(frozen=True)
class Signature:
    """The transaction a delivery sends: signed by it, or resumed from an earlier one."""

    tx: SignedSwap
    submitted_at: float  # when its latest `submitted` was published (a Unix time)
    fresh: bool  # signed by this delivery: no earlier one has sent it
    landed: Outcome | None  # its outcome, if an earlier delivery's send of it landed


def stage_error(exc: ChainError) -> StageError:
    kind = TransientError if exc.retryable else PermanentError
    return kind(exc.code, exc.reason, details=exc.details, status=OrderStatus.SUBMITTED)


class ExecutorService:
    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self.market = Market.from_settings(settings)
        self.chain: SimulatedChain | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._worker: ConsumerWorker | None = None

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None
        return self._js

    async def start(self) -> None:
        self._nc = await connect(self.settings, "dexec-executor")
        # One context: it holds the inbox that deferred publishes' acks come back to.
        self._js = self._nc.jetstream()
        await ensure_stream(self.js, self.settings)
        self.chain = await SimulatedChain.open(
            self.js,
            self.market,
            self.settings,
            self.settings.stream_replicas,
            ttl_seconds=self.settings.stream_max_age_seconds,  # else the bucket grows for ever
        )
        self._worker = ConsumerWorker(
            self.js,
            self.settings,
            EXECUTOR_CONSUMER,
            EXECUTOR_STAGE,
            self.handle,
            concurrency=self.settings.executor_concurrency,
        )
        await self._worker.start()

    @property
    def processed(self) -> int:
        """Messages this replica finished: shows how replicas share the work."""
        return self._worker.processed if self._worker else 0

    async def stop(self) -> None:
        if self._worker:
            await self._worker.stop()
        if self.chain:
            await self.chain.close()
        if self._nc:
            await disconnect(self._nc)

    async def handle(self, event: OrderEvent, delivery: Delivery) -> None:
        assert self.chain is not None
        order_id = event.order_id
        # Only the swap: the router's quotes and candidates are for the record, not for us.
        route = SwapPlan.model_validate(event.data)
        stored = await self._announce(order_id, delivery)
        if stored is None:
            return  # a previous delivery finished the order; this one only needs its ack
        signature = await self._resume_or_sign(order_id, route, stored, delivery)
        try:
            outcome = await self._send_and_confirm(signature, delivery)
        except ChainError as exc:
            error = stage_error(exc)
            if (
                not self._ends_order(error, delivery.attempt)
                or signature.fresh
                or not await self._may_be_in_flight(order_id, signature.tx, delivery.attempt)
            ):
                raise error from exc
            # An earlier delivery's send of this signature may still land: before the order
            # ends `failed`, wait until it lands or the chain records that it never will.
            try:
                outcome = await self._confirm(signature.tx, delivery, None)
            except ChainError:
                raise error from exc
        await self._finish(order_id, outcome)
        SUBMITTED_TO_CONFIRMED.observe(time.time() - signature.submitted_at)

    async def _send_and_confirm(self, signature: Signature, delivery: Delivery) -> Outcome:
        assert self.chain is not None
        tx, landed = signature.tx, signature.landed
        if landed is None:
            # Not on the chain yet: send it. An earlier send of it still in flight writes the
            # same key, so the transaction lands once.
            with tracing.child_span(SCOPE, "send transaction", SpanKind.CLIENT):
                landed = await self.chain.send(tx, delivery.attempt, fresh=signature.fresh)
        # else an earlier delivery's send landed: sending again could only fail (a 429 on
        # the last attempt would report an executed swap as failed), so only confirm it.
        await delivery.keep_alive()
        with tracing.child_span(SCOPE, "confirm transaction", SpanKind.CLIENT):
            return await self._confirm(tx, delivery, landed)

    def _ends_order(self, error: StageError, attempt: int) -> bool:
        """Whether the worker will end the order `failed` on this error."""
        return isinstance(error, PermanentError) or attempt >= self.settings.retry_max_attempts

    async def _may_be_in_flight(self, order_id: str, tx: SignedSwap, attempt: int) -> bool:
        """Whether a delivery before this one, since `tx` was first submitted, may still have
        a send of it on its way. One that ended with `retrying` had finished its send; one
        that stopped answering (and was redelivered) or met a bus error may not have."""
        events = [past.event for past in await read_order_events(self.js, order_id)]
        first = min(
            (
                e.attempt
                for e in events
                if e.event == EventType.SUBMITTED and e.data.get("signature") == tx.signature
            ),
            default=attempt,
        )
        retried = {
            e.attempt
            for e in events
            if e.event == EventType.RETRYING and e.data.get("stage") == EXECUTOR_STAGE.name
        }
        return any(earlier not in retried for earlier in range(first, attempt))

    async def _confirm(self, tx: SignedSwap, delivery: Delivery, landed: Outcome | None) -> Outcome:
        """Wait for confirmation, telling JetStream the order is still being worked on."""
        assert self.chain is not None
        waiting = asyncio.create_task(self.chain.wait_confirmed(tx, landed))
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=self.settings.ack_wait_seconds / 3)
                if done:
                    return waiting.result()
                await delivery.in_progress()
        finally:
            waiting.cancel()

    async def _announce(self, order_id: str, delivery: Delivery) -> list[StoredEvent] | None:
        """The order's latest events since `routed`, with this delivery's fence set after
        them and `building` published through it (a redelivery's is a duplicate, dropped by
        its msg id). None if the order has ended.

        A first delivery reads nothing: its fence is `routed` itself, so `building` is stored
        only if nothing followed `routed`, and then no executor has worked on the order. Only
        if it is refused (a durable recreated after the order ran, say) does it read."""
        routed_seq = delivery.seq
        stored: list[StoredEvent] = []
        kinds: tuple[EventType, ...] | None = AFTER_ROUTED if delivery.attempt > 1 else None
        for _ in range(ANNOUNCE_TRIES):
            if kinds is not None:
                stored = await read_latest_events(self.js, order_id, kinds)
                if any(past.event.event in TERMINAL_EVENTS for past in stored):
                    return None
            delivery.fence = OrderFence(order_id, max([routed_seq, *(p.seq for p in stored)]))
            try:
                await emit_fenced(
                    self.js, delivery.fence, EventType.BUILDING, attempt=delivery.attempt
                )
            except SubjectMoved:
                # Something follows `routed`: another delivery's work (read it), or, once
                # that read did not explain it, an event of a kind not read (read every kind).
                kinds = AFTER_ROUTED if kinds is None else LATEST_OF_EACH
                continue
            return stored
        raise Superseded(order_id)

    async def _resume_or_sign(
        self, order_id: str, route: SwapPlan, stored: list[StoredEvent], delivery: Delivery
    ) -> Signature:
        """The transaction to send: the latest submitted one unless the chain records that it
        never landed, else one signed now. Unless it already landed, it is submitted (again)
        through the fence before it is sent.

        Raises `Superseded` if another delivery published since `stored` was read: a
        signature must never go out beside one that may land, nor after the order failed."""
        assert self.chain is not None
        building_started = time.perf_counter()
        submitted = [past for past in stored if past.event.event == EventType.SUBMITTED]
        if submitted:
            delivery.reached = OrderStatus.SUBMITTED  # a retry must not report less
            last_event = submitted[-1].event
            last: Submission = last_event.payload()
            tx = self.chain.resign(order_id, route, last.blockhash, last.last_valid_block_height)
            landed = await self.chain.outcome(tx.signature)
            expired = landed is None and self.chain.clock.now() > tx.last_valid_block_height
            if expired:
                # An earlier send may still reach the chain late: only the chain's record
                # that it never landed makes a second signature safe; else it did land.
                landed = await self.chain.settle_expired(tx)
            if landed is not None or not expired:
                log.info("resuming signature %s", tx.signature, extra={"order_id": order_id})
                if landed is not None:
                    return Signature(tx, last_event.at.timestamp(), False, landed)
                # This delivery will send it: others must know.
                await self._submit(tx, delivery, written_before=True)
                return Signature(tx, time.time(), False, None)
        tx = self.chain.sign(order_id, route)
        await self._submit(tx, delivery, written_before=False)
        BUILDING_TO_SUBMITTED.observe(time.perf_counter() - building_started)
        return Signature(tx, time.time(), True, None)

    async def _submit(self, tx: SignedSwap, delivery: Delivery, *, written_before: bool) -> None:
        """Write `submitted` ahead of this delivery's send of `tx`, through its fence.

        `written_before`: `tx` is the order's latest `submitted` already, resumed. A new
        signature's `submitted` that the stream drops as a duplicate was not written: another
        event has its msg id (`<orderId>:submitted:<attempt>`), as when a recreated durable
        counts attempts from 1 again within the duplicate window. Then `Superseded`, and `tx`
        is never sent; the redelivery tries again under its own attempt's msg id."""
        assert delivery.fence is not None
        submission = Submission(
            signature=tx.signature,
            blockhash=tx.blockhash,
            last_valid_block_height=tx.last_valid_block_height,
        )
        try:
            ack = await emit_fenced(
                self.js, delivery.fence, EventType.SUBMITTED, submission, attempt=delivery.attempt
            )
        except SubjectMoved as exc:
            raise Superseded(tx.order_id) from exc
        if ack.duplicate and not written_before:
            log.warning(
                "submitted %s not written: attempt %d's msg id is taken; not sending it",
                tx.signature,
                delivery.attempt,
                extra={"order_id": tx.order_id},
            )
            raise Superseded(tx.order_id)
        delivery.reached = OrderStatus.SUBMITTED

    async def _finish(self, order_id: str, outcome: Outcome) -> None:
        if not outcome.ok:
            raise PermanentError(
                outcome.error_code or "TRANSACTION_FAILED",
                outcome.error_reason or "the transaction failed on chain",
                details={"venueError": outcome.venue_error, "signature": outcome.signature},
                status=OrderStatus.SUBMITTED,
            )
        execution = Execution(
            tx_hash=outcome.signature,
            slot=outcome.slot,
            in_amount=outcome.in_amount,
            out_amount=outcome.out_amount,
            executed_price=outcome.executed_price,
            fee_lamports=outcome.fee_lamports,
        )
        await emit(self.js, order_id, EventType.CONFIRMED, execution)
