"""The executor: consumes `routed`, builds, signs, submits and confirms the swap.

Write-ahead (DESIGN §5): `submitted` is in the stream before the transaction is sent. On a
redelivery the executor reads the order's events and resumes the signature it already
published; it signs anew only when the chain records that it expired without landing
(`SimulatedChain.settle_expired`): a send of it still in flight can then no longer land.

Metrics: building → submitted (this attempt's build and sign) and submitted → confirmed (from
the submission that landed, so a resumed or retried send counts its whole wait).
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
from dexec.bus.history import StoredEvent, read_latest_events, read_order_events
from dexec.bus.publisher import SubjectMoved, emit, emit_deferred
from dexec.bus.subjects import EXECUTOR_CONSUMER
from dexec.bus.worker import ConsumerWorker, Delivery, Stage
from dexec.market.chain import ChainError, Outcome, SignedSwap, SimulatedChain
from dexec.market.market import Market
from dexec.metrics import STAGE_DURATION, StageName
from dexec.orders.events import Execution, OrderEvent, Route, Submission
from dexec.orders.states import TERMINAL_EVENTS, EventType, OrderStatus
from dexec_executor.settings import ExecutorSettings

log = logging.getLogger(__name__)

EARLIER_WORK = TERMINAL_EVENTS | {EventType.SUBMITTED}
# Execution is done once the order has ended; `handle` reads that (with the latest
# submission, `EARLIER_WORK`) on every delivery, so the worker need not read it first.
EXECUTOR_STAGE = Stage(
    "executor",
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
    submitted_at: float  # when its `submitted` was published (a Unix time)
    signed_at: int  # the attempt that signed it
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
        self.chain = await SimulatedChain.open(self.js, self.market, self.settings)
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
        route: Route = event.payload()
        # Only what a previous delivery may have done matters: its latest submission and its
        # end, one `multi_last` request (a third of what the whole history costs the server).
        stored = await read_latest_events(self.js, order_id, EARLIER_WORK)
        if any(past.event.event in TERMINAL_EVENTS for past in stored):
            return  # a previous delivery finished the order; this one only needs its ack
        # `building` goes out now and is confirmed before the send, after signing (and the
        # write-ahead `submitted`, which the stream stores after it).
        building = await emit_deferred(
            self.js, order_id, EventType.BUILDING, attempt=delivery.attempt
        )
        signature = await self._resume_or_sign(order_id, route, stored, delivery.attempt)
        await building.acked()
        try:
            outcome = await self._send_and_confirm(signature, delivery)
        except ChainError as exc:
            error = stage_error(exc)
            if not self._ends_order(error, delivery.attempt) or not await self._may_be_in_flight(
                order_id, signature.signed_at, delivery.attempt
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
                # Signed just now: not on the chain.
                fresh = signature.signed_at == delivery.attempt
                landed = await self.chain.send(tx, delivery.attempt, fresh=fresh)
        # else an earlier delivery's send landed: sending again could only fail (a 429 on
        # the last attempt would report an executed swap as failed), so only confirm it.
        await delivery.keep_alive()
        with tracing.child_span(SCOPE, "confirm transaction", SpanKind.CLIENT):
            return await self._confirm(tx, delivery, landed)

    def _ends_order(self, error: StageError, attempt: int) -> bool:
        """Whether the worker will end the order `failed` on this error."""
        return isinstance(error, PermanentError) or attempt >= self.settings.retry_max_attempts

    async def _may_be_in_flight(self, order_id: str, signed_at: int, attempt: int) -> bool:
        """Whether a delivery before this one that had the signature (signed at attempt
        `signed_at`) may still have a send of it on its way. One that ended with `retrying`
        had finished its send; one that stopped answering (and was redelivered) or met a bus
        error may not have."""
        if signed_at == attempt:
            return False
        retried = {
            past.event.attempt
            for past in await read_order_events(self.js, order_id)
            if past.event.event == EventType.RETRYING
            and past.event.data.get("stage") == EXECUTOR_STAGE.name
        }
        return any(earlier not in retried for earlier in range(signed_at, attempt))

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

    async def _resume_or_sign(
        self, order_id: str, route: Route, stored: list[StoredEvent], attempt: int
    ) -> Signature:
        """The transaction to send: the latest submitted one unless the chain records that it
        never landed, else one signed (and submitted) now.

        Raises `Superseded` if another delivery of the order published a submission since
        `stored` was read: a second signature must never go out beside one that may land."""
        assert self.chain is not None
        building_started = time.perf_counter()
        submitted = [past for past in stored if past.event.event == EventType.SUBMITTED]
        last_submitted_seq = submitted[-1].seq if submitted else 0
        if submitted:
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
                return Signature(tx, last_event.at.timestamp(), last_event.attempt, landed)
        tx = self.chain.sign(order_id, route)
        submission = Submission(
            signature=tx.signature,
            blockhash=tx.blockhash,
            last_valid_block_height=tx.last_valid_block_height,
        )
        try:
            await emit(
                self.js,
                order_id,
                EventType.SUBMITTED,
                submission,
                attempt=attempt,
                expected_last_seq=last_submitted_seq,
            )
        except SubjectMoved as exc:
            raise Superseded(order_id) from exc
        BUILDING_TO_SUBMITTED.observe(time.perf_counter() - building_started)
        return Signature(tx, time.time(), attempt, None)

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
