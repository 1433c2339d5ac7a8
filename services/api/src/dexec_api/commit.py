"""Committing an order: publishing its `pending` until the stream acks it.

A publish that times out is ambiguous: the server may have stored the event and only the ack
was lost, and nats-py holds publishes made while it is disconnected and sends them once it
reconnects. Answering a plain 503 then invites a client without an Idempotency-Key to submit
again and get two orders. So the same event is published again (same msg id, so the stream
keeps one copy) until an ack comes or the budget runs out, and an outcome that stays unknown
is reported as such, with the order id to look up.
"""

from __future__ import annotations

import asyncio
import time

from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from dexec.bus.publisher import publish_event
from dexec.orders.events import OrderEvent
from dexec_api.metrics import COMMIT_RETRIES

# One attempt's wait for its ack: short enough to try again within the budget.
ATTEMPT_TIMEOUT_SECONDS = 2.0
# Between attempts that failed at once (no stream answered), so they do not spin.
PAUSE_SECONDS = 0.25


class CommitUncertain(Exception):
    """An attempt may have reached the stream: the order may exist."""


async def commit_event(js: JetStreamContext, event: OrderEvent, budget_seconds: float) -> PubAck:
    """The ack of `event`, published as often as it takes within `budget_seconds`.

    Raises `CommitUncertain` if an attempt may have been stored, else the last refusal (a
    `nats.errors.Error`: nothing was stored)."""
    deadline = time.monotonic() + budget_seconds
    maybe_stored = False
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await publish_event(
                js, event, timeout=max(0.05, min(ATTEMPT_TIMEOUT_SECONDS, remaining))
            )
        except NoRespondersError as exc:  # no JetStream server took it
            last: NatsError = exc
        except NatsError as exc:  # a timeout, or lost with the connection: unknown
            last, maybe_stored = exc, True
        if time.monotonic() + PAUSE_SECONDS >= deadline:
            if maybe_stored:
                raise CommitUncertain() from last
            raise last
        COMMIT_RETRIES.inc()
        await asyncio.sleep(PAUSE_SECONDS)
