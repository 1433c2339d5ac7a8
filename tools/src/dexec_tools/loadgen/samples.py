"""Raw samples a worker records and hands back to the parent.

Workers keep per-event work tiny: an event is stored as a plain tuple with its server
timestamp still a string; parsing, de-duplication and percentiles happen in the parent after
the run, off the measured path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple


class Received(NamedTuple):
    """One WebSocket message about an order, as the client saw it."""

    seq: int  # the stream sequence: increases along an order's events
    event: str
    status: str
    at: str  # the server's ISO 8601 timestamp (UTC), parsed after the run
    received: float  # client wall clock (time.time()) when the message was read
    code: str | None  # the failure code on a `failed` event


@dataclass(slots=True)
class OrderSample:
    """Everything the client saw of one order: its submission and its events."""

    index: int  # the order's number in the run (0..N-1), also in its Idempotency-Key
    idempotency_key: str
    order_id: str | None = None
    due_at: float | None = None  # wall clock when the schedule said to send it (paced runs)
    first_post_at: float | None = None  # wall clock of the first attempt
    accepted_at: float | None = None  # wall clock when the accepting answer arrived
    post_seconds: float | None = None  # round trip of the attempt that was answered
    http_status: int | None = None  # of the last answer (None: no answer, transport errors)
    error: str | None = None  # why it was not accepted, e.g. "422 INVALID_AMOUNT"
    retries: int = 0
    replayed: bool = False  # 200: the key was already committed (an earlier attempt landed)
    events: list[Received] = field(default_factory=list)
    last_seq: int = 0  # highest seq seen: where a reconnecting socket resumes
    terminal: bool = False
    not_found: bool = False  # the notifier said it does not know the order

    @property
    def accepted(self) -> bool:
        return self.order_id is not None


@dataclass(slots=True)
class ProcessCpu:
    """CPU a generator process spent over the measured span of the run."""

    name: str
    cpu_seconds: float  # user + system
    wall_seconds: float


@dataclass(slots=True)
class WorkerResult:
    worker: int
    orders: list[OrderSample]
    cpu: ProcessCpu
    reconnects: int = 0  # sockets re-opened after a drop
    sockets_opened: int = 0
    error_frames: Counter[str] = field(default_factory=Counter)  # {"error": {"code": …}} frames
    close_codes: Counter[int] = field(default_factory=Counter)  # abnormal closes, by code
    connect_failures: Counter[str] = field(default_factory=Counter)  # by exception name
