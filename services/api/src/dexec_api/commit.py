"""Committing an order: publishing its `pending` until the stream acks it.

A publish that times out is ambiguous: the server may have stored the event and only the ack
was lost. Answering a plain 503 then invites a client without an Idempotency-Key to submit
again and get two orders. So the same event is published again (same msg id, so the stream
keeps one copy) until an ack comes or the budget runs out, and an outcome that stays unknown
is reported as such, with the order id to look up. A publish refused before it reached a
stream (no stream answered, the stream said no, or the API is disconnected: its connection
holds nothing back for later, see `dexec.bus.connection.connect`) was certainly not stored.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from nats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    NoRespondersError,
    OutboundBufferLimitError,
)
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

from dexec.bus.publisher import publish_event
from dexec.orders.events import OrderEvent
from dexec_api.metrics import COMMIT_RETRIES

# One attempt's wait for its ack: short enough to try again within the budget.
ATTEMPT_TIMEOUT_SECONDS = 2.0
# Between attempts (after a refusal or an unanswered one), so that a bus that answers at once
# is not asked in a tight loop.
PAUSE_SECONDS = 0.25
# Errors that mean the attempt was not stored: refused before sending, or answered by "no".
NOT_STORED: tuple[type[NatsError], ...] = (
    OutboundBufferLimitError,  # disconnected, and nothing is held for later
    ConnectionClosedError,
    ConnectionDrainingError,
    NoRespondersError,
    NoStreamResponseError,  # nats-py's JetStream name for "no responders"
    APIError,  # the stream's own error reply
)


class CommitUncertain(Exception):
    """An attempt may have reached the stream: the order may exist."""


@dataclass(frozen=True)
class Committed:
    ack: PubAck
    # Whether this call stored the event, rather than found it stored by another request that
    # published it too (the ack says "duplicate"). A duplicate after an attempt of this call
    # that went unanswered may be that attempt's own copy: counted as stored here.
    stored_here: bool


async def commit_event(js: JetStreamContext, event: OrderEvent, budget_seconds: float) -> Committed:
    """The ack of `event`, published as often as it takes within `budget_seconds`.

    Raises `CommitUncertain` if an attempt may have been stored, else the last refusal (a
    `nats.errors.Error`: nothing was stored)."""
    deadline = time.monotonic() + budget_seconds
    maybe_stored = False
    while True:
        remaining = deadline - time.monotonic()
        try:
            ack = await publish_event(
                js, event, timeout=max(0.05, min(ATTEMPT_TIMEOUT_SECONDS, remaining))
            )
            return Committed(ack, stored_here=maybe_stored or not ack.duplicate)
        except NOT_STORED as exc:
            last: NatsError = exc
        except NatsError as exc:  # a timeout, or lost with the connection: unknown
            last, maybe_stored = exc, True
        if time.monotonic() + PAUSE_SECONDS >= deadline:
            if maybe_stored:
                raise CommitUncertain() from last
            raise last
        COMMIT_RETRIES.inc()
        await asyncio.sleep(PAUSE_SECONDS)
