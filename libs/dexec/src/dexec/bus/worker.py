"""A pull-consumer worker: fetch in batches, run handlers concurrently, apply the retry policy.

The policy (DESIGN §2): a `TransientError` (or an unexpected exception) is retried with
exponential backoff through `nak(delay)` for at most `max_attempts` deliveries; a
`PermanentError`, or the last attempt, publishes `failed` and `term()`s the message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from pydantic import ValidationError

from dexec.bus.errors import PermanentError, StageError, TransientError
from dexec.bus.publisher import emit
from dexec.bus.pull import PullLoop
from dexec.bus.subjects import ConsumerSpec
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
    """Runs one stage's handler on a durable consumer, with the retry policy above."""

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
        self._stage = stage
        self._handler = handler
        self._pull = PullLoop(
            js, settings, spec, self._process, concurrency=concurrency, batch=batch
        )
        # Messages this worker finished (acked or terminated): shows how replicas share work.
        self.processed = 0

    async def start(self) -> None:
        await self._pull.start()

    async def stop(self, timeout: float = 10.0) -> None:
        await self._pull.stop(timeout)

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
