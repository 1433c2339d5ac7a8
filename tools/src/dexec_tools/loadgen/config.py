"""The run's parameters and how they are split among worker processes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

SocketMode = Literal["multiplexed", "per-order"]


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a worker needs; picklable, since spawned workers receive a copy."""

    api_url: str
    ws_url: str
    orders: int
    rate: float  # orders/s for the whole run; 0: as fast as they are accepted
    concurrency: int  # POSTs in flight, for the whole run
    workers: int
    sockets: SocketMode
    sockets_per_worker: int  # multiplexed: sockets each worker opens up front
    subscribe_batch_seconds: float  # multiplexed: subscriptions are sent in batches this often
    batched_frames: bool  # ask the notifier for JSON-array frames (?batch=true)
    timeout: float  # after its last POST, how long a worker waits for the last terminal event
    token_in: str
    token_out: str
    amount: str  # a decimal string in token units; never a float
    amount_decimals: int  # the variation stays within this many decimal places
    amount_jitter_bps: int  # each order's amount varies by up to ± this share of `amount`
    slippage_bps: int | None
    api_key: str | None
    run_id: str  # prefix of every Idempotency-Key, so runs never collide
    max_retries: int
    seed: int
    ws_compression: bool

    def as_json(self) -> dict[str, Any]:
        """The run parameters as the report shows them (the API key is not echoed)."""
        params = asdict(self)
        params["api_key"] = "***" if self.api_key else None
        return params


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One worker's share: orders first_index..first_index+orders-1 at `rate` orders/s."""

    worker: int
    first_index: int
    orders: int
    rate: float
    concurrency: int


def _split(total: int, parts: int, part: int) -> int:
    """`total` spread over `parts` as evenly as integers allow (the first ones get the rest)."""
    return total // parts + (1 if part < total % parts else 0)


def plan_workers(config: RunConfig) -> list[WorkerPlan]:
    """Split the orders, the rate and the concurrency among the workers.

    Each worker paces its own share at rate * its share of the orders, so the workers together
    keep the target rate without talking to each other. A worker with no orders, or with no
    POST slot of its own (more workers than `concurrency`), is not started.
    """
    workers = max(1, min(config.workers, config.orders, config.concurrency))
    plans: list[WorkerPlan] = []
    first = 0
    for worker in range(workers):
        orders = _split(config.orders, workers, worker)
        plans.append(
            WorkerPlan(
                worker=worker,
                first_index=first,
                orders=orders,
                rate=config.rate * orders / config.orders if config.orders else 0.0,
                concurrency=_split(config.concurrency, workers, worker),
            )
        )
        first += orders
    return plans
