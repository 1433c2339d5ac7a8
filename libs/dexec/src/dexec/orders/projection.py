"""Folding events into an order's current view.

`apply` is idempotent and insensitive to delivery order: status only moves forward through the
state table, each detail is set by the event that owns it, and an ended order's end is final.
The recorder folds events into Postgres rows with it, and the API folds the stream with it
while the recorder catches up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dexec.orders.events import OrderEvent
from dexec.orders.states import EventType, OrderStage, OrderStatus, is_terminal, status_after

STAGE_ORDER = {stage.value: rank for rank, stage in enumerate(OrderStage)}


def _retry_rank(retry: dict[str, Any], attempt: int) -> tuple[int, int]:
    """A later stage's retry comes after any of an earlier one's, whatever their attempts."""
    return (STAGE_ORDER.get(retry.get("stage", ""), -1), attempt)


@dataclass
class OrderView:
    order_id: str
    status: OrderStatus = OrderStatus.PENDING
    spec: dict[str, Any] | None = None
    route: dict[str, Any] | None = None
    submission: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    last_retry: dict[str, Any] | None = None
    attempts: int = 1
    last_seq: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def apply(self, seq: int, event: OrderEvent) -> None:
        match event.event:
            case EventType.PENDING if self.spec is None:
                self.spec = event.data
                self.created_at = event.at  # an order is created when its `pending` is
            case EventType.ROUTED:
                self.route = self.route or event.data
            case EventType.SUBMITTED if event.attempt >= self._submission_attempt():
                # The attempt rides along so a late, older submission cannot replace a newer one.
                self.submission = {**event.data, "attempt": event.attempt}
            # The first end is the order's end: a second terminal event (which the stages
            # guard against publishing) never rewrites it.
            case EventType.CONFIRMED if not is_terminal(self.status):
                self.execution = event.data
            case EventType.FAILED if not is_terminal(self.status):
                self.failure = event.data
            case EventType.RETRYING if _retry_rank(event.data, event.attempt + 1) >= (
                self._latest_retry_rank()
            ):
                # `attempts` counts within the stage of the latest retry.
                self.last_retry = event.data
                self.attempts = event.attempt + 1
        self.status = status_after(self.status, event.event)
        self.last_seq = max(self.last_seq, seq)
        # Until the `pending` is seen, the earliest event stands in. (Not the earliest of all
        # after it: another service's clock may run behind the API's, and the listing, keyed
        # on `created_at`, must not see it move once the order is listed.)
        if self.spec is None and (self.created_at is None or event.at < self.created_at):
            self.created_at = event.at
        if self.updated_at is None or event.at > self.updated_at:
            self.updated_at = event.at

    def _latest_retry_rank(self) -> tuple[int, int]:
        if self.last_retry is None:
            return (-1, self.attempts)
        return _retry_rank(self.last_retry, self.attempts)

    def _submission_attempt(self) -> int:
        return int(self.submission["attempt"]) if self.submission else 0


def fold(order_id: str, events: list[tuple[int, OrderEvent]]) -> OrderView:
    view = OrderView(order_id)
    for seq, event in events:
        view.apply(seq, event)
    return view
