"""A worker process: its own event loop posting its share of the orders and following them.

Workers are started with the spawn method (no inherited event loop, sockets or threads from
the parent) and hand back raw samples only; the parent computes every figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from dexec_tools.loadgen.config import RunConfig, WorkerPlan
from dexec_tools.loadgen.follow import Follower, Ledger, MultiplexFollower, PerOrderFollower
from dexec_tools.loadgen.samples import OrderSample, ProcessCpu, WorkerResult
from dexec_tools.loadgen.schedule import idempotency_key
from dexec_tools.loadgen.submit import Submitter

# Opening the multiplexed sockets must not hang a run against a notifier that is not there.
START_TIMEOUT_SECONDS = 30.0
# A worker orphaned before the start (its parent killed) must not wait forever; the parent
# itself gives the workers 60 s to get ready.
START_SIGNAL_TIMEOUT_SECONDS = 120.0
# Slots per worker in the shared progress array.
ACCEPTED, COMPLETED, READY = range(3)
SLOTS = 3


@dataclass(frozen=True)
class Shared:
    """What the parent shares with every worker (handed over when the process is spawned)."""

    counters: Any  # multiprocessing.Array("q", SLOTS * workers, lock=False): one writer per slot
    start: Any  # multiprocessing.Event: set once every worker is ready, so all start together
    results: Any  # multiprocessing.Queue of ("ok", worker, WorkerResult) | ("error", worker, str)


def worker_main(config: RunConfig, plan: WorkerPlan, shared: Shared) -> None:
    """The process entry point: run, then put the result (or the traceback) on the queue."""
    try:
        result = _run_loop(_work(config, plan, shared))
        shared.results.put(("ok", plan.worker, result))
    except BaseException:  # KeyboardInterrupt too: the parent must hear why a worker ended
        shared.results.put(("error", plan.worker, traceback.format_exc()))


def _run_loop(main: Coroutine[Any, Any, WorkerResult]) -> WorkerResult:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        return asyncio.run(main)
    return uvloop.run(main)


def raise_open_files_limit() -> None:
    """One socket per order in flight needs far more than the usual 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _work(config: RunConfig, plan: WorkerPlan, shared: Shared) -> WorkerResult:
    raise_open_files_limit()
    base = SLOTS * plan.worker
    counters = shared.counters

    def progress(accepted: int, completed: int) -> None:
        counters[base + ACCEPTED] = accepted
        counters[base + COMPLETED] = completed

    orders = [
        OrderSample(index, idempotency_key(config.run_id, index))
        for index in range(plan.first_index, plan.first_index + plan.orders)
    ]
    ledger = Ledger(progress)
    follower: Follower = (
        MultiplexFollower(config, ledger)
        if config.sockets == "multiplexed"
        else PerOrderFollower(config, ledger)
    )

    def accepted(order: OrderSample) -> None:
        ledger.add(order)
        follower.track(order)

    rng = random.Random(config.seed * 1_000 + plan.worker)
    submitter = Submitter(config, plan, orders, accepted, rng)
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            await follower.start()
        counters[base + READY] = 1
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, shared.start.wait, START_SIGNAL_TIMEOUT_SECONDS):
            raise TimeoutError("the parent never started the run")
        cpu_before, wall_before = os.times(), time.monotonic()
        await submitter.run()
        ledger.submission_finished()
        # The tail: orders not settled by then are reported as stuck or lost.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(config.timeout):
                await ledger.all_settled.wait()
        cpu_after, wall_after = os.times(), time.monotonic()
    finally:
        await follower.close()
    cpu = ProcessCpu(
        name=f"worker-{plan.worker}",
        cpu_seconds=(cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        wall_seconds=wall_after - wall_before,
    )
    return WorkerResult(
        worker=plan.worker,
        orders=orders,
        cpu=cpu,
        reconnects=ledger.reconnects,
        sockets_opened=ledger.sockets_opened,
        error_frames=ledger.error_frames,
        close_codes=ledger.close_codes,
        connect_failures=ledger.connect_failures,
    )
