"""A pull-consumer worker: fetch in batches, run handlers concurrently, apply the retry policy.

The policy (DESIGN §2): a `TransientError` (or an unexpected exception) is retried with
exponential backoff through `nak(delay)` for at most `max_attempts` deliveries; a
`PermanentError`, or the last attempt, publishes `failed` and `term()`s the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import ValidationError

from dexec.bus.connection import ensure_consumer
from dexec.bus.errors import PermanentError, StageError, TransientError
from dexec.bus.publisher import emit
from dexec.bus.subjects import STREAM, ConsumerSpec
from dexec.orders.events import Failure, OrderEvent, Retry
from dexec.orders.states import EventType, OrderStatus
from dexec.settings import CommonSettings

log = logging.getLogger(__name__)

# Failures of the bus itself (every nats-py error derives from nats.errors.Error).
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (NatsError, ConnectionError)


def backoff_delay(attempt: int, base_seconds: float) -> float:
    """Delay before the attempt after `attempt`: base, 2·base, 4·base, ..."""
    return base_seconds * 2 ** (attempt - 1)


@dataclass
class Delivery:
    """What a handler knows about the message it is handling."""

    msg: Msg
    attempt: int

    async def in_progress(self) -> None:
        """Reset the ack timer during slow work, so JetStream does not redeliver it."""
        await self.msg.in_progress()


Handler = Callable[[OrderEvent, Delivery], Awaitable[None]]


@dataclass(frozen=True)
class Stage:
    name: str
    # Status reported on `retrying`/`failed` events when the error does not say otherwise.
    status: OrderStatus


class ConsumerWorker:
    def __init__(
        self,
        js: JetStreamContext,
        settings: CommonSettings,
        spec: ConsumerSpec,
        stage: Stage,
        handler: Handler,
        *,
        concurrency: int = 256,
        batch: int = 64,
    ) -> None:
        self._js = js
        self._settings = settings
        self._spec = spec
        self._stage = stage
        self._handler = handler
        self._concurrency = concurrency
        self._batch = batch
        self._room = asyncio.Event()
        # Messages this worker finished (acked or terminated): shows how replicas share work.
        self.processed = 0
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await ensure_consumer(self._js, self._spec, self._settings, self._concurrency * 4)
        self._sub = await self._js.pull_subscribe_bind(self._spec.durable, stream=STREAM)
        self._loop = asyncio.create_task(self._fetch_loop())

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop fetching and let in-flight handlers finish (unfinished ones are redelivered).

        The subscription is gone before this returns, so draining the connection afterwards
        does not wait on an outstanding pull request.
        """
        self._stopping.set()
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _fetch_loop(self) -> None:
        assert self._sub is not None
        while not self._stopping.is_set():
            free = self._concurrency - len(self._tasks)
            if free <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 1.0)
                continue
            try:
                msgs = await self._sub.fetch(min(self._batch, free), timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as exc:  # reconnecting, or the consumer is being recreated
                log.warning("fetch from %s failed: %s", self._spec.durable, exc)
                await self._wait_or_stop(0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._process(msg))
                self._tasks.add(task)
                task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._room.set()

    async def _wait_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _process(self, msg: Msg) -> None:
        try:
            event = OrderEvent.from_json(msg.data)
        except ValidationError:
            log.error("dropping malformed message on %s", msg.subject)
            await msg.term()
            return
        try:
            await self._handle(event, msg, msg.metadata.num_delivered)
        except INFRASTRUCTURE_ERRORS as exc:
            # NATS is restarting or unreachable: not the order's fault, so no attempt is spent
            # on it by a `failed`; the message comes back (now, or after ack_wait) and resumes.
            log.warning(
                "%s: infrastructure error, redelivering: %r",
                self._stage.name,
                exc,
                extra={"order_id": event.order_id},
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._settings.retry_backoff_base_seconds)
        except Exception:
            log.exception("%s: handler crashed", self._stage.name)

    async def _handle(self, event: OrderEvent, msg: Msg, attempt: int) -> None:
        try:
            await self._handler(event, Delivery(msg, attempt))
            await msg.ack()
        except PermanentError as exc:
            await self._give_up(event, exc, attempt)
            await msg.term()
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            error = exc if isinstance(exc, TransientError) else _unexpected(exc)
            if attempt >= self._settings.retry_max_attempts:
                await self._give_up(event, error, attempt)
                await msg.term()
                return
            delay = backoff_delay(attempt, self._settings.retry_backoff_base_seconds)
            await self._retry(event, error, attempt, delay)
            await msg.nak(delay=delay)
        self.processed += 1

    async def _retry(
        self, event: OrderEvent, error: StageError, attempt: int, delay: float
    ) -> None:
        log.info(
            "retrying %s after %s (attempt %d, in %.2fs)",
            self._stage.name,
            error.code,
            attempt,
            delay,
            extra={"order_id": event.order_id},
        )
        retry = Retry(
            stage=self._stage.name, code=error.code, reason=error.reason, delay_seconds=delay
        )
        status = error.status or self._stage.status
        await emit(
            self._js, event.order_id, EventType.RETRYING, retry, attempt=attempt, status=status
        )

    async def _give_up(self, event: OrderEvent, error: StageError, attempt: int) -> None:
        log.warning(
            "order failed in %s: %s", self._stage.name, error, extra={"order_id": event.order_id}
        )
        failure = Failure(
            code=error.code,
            reason=error.reason,
            attempts=attempt,
            details={"stage": self._stage.name, **error.details},
        )
        await emit(self._js, event.order_id, EventType.FAILED, failure, attempt=attempt)


def _unexpected(exc: Exception) -> TransientError:
    # An unexpected error may be a passing fault (a dropped connection); retry it, and if it
    # persists the order still ends `failed` with the error recorded instead of being lost.
    log.exception("unexpected error in handler")
    return TransientError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
