"""Errors a stage handler raises to tell the consumer worker what to do with the message."""

from __future__ import annotations

from typing import Any

from dexec.orders.states import OrderStatus

# JetStream's error codes for "the subject's last sequence is not the one expected" (a
# conditional publish, or a KV update/delete expecting a revision, that lost a race).
WRONG_LAST_SEQUENCE = (10071, 10164)


class StageError(Exception):
    def __init__(
        self,
        code: str,
        reason: str,
        *,
        details: dict[str, Any] | None = None,
        status: OrderStatus | None = None,
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.details = details or {}
        # The status the order has when the error happens (for the `retrying`/`failed` events).
        self.status = status


class TransientError(StageError):
    """Worth retrying: timeouts, rate limits, an expired blockhash."""


class PermanentError(StageError):
    """Retrying cannot help: slippage, no route, bad input, insufficient funds."""


class Superseded(Exception):
    """Another delivery of the same message has taken the order over (it published since this
    one last read the order): this delivery stops. Unless the order is done by then, it
    neither acks nor naks what it no longer owns."""
