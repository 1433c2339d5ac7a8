"""The parent's side of a run: spawn the workers, start them together, watch, collect."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

import psutil

from dexec_tools.loadgen.config import RunConfig, WorkerPlan, plan_workers
from dexec_tools.loadgen.progress import Progress
from dexec_tools.loadgen.samples import ProcessCpu, WorkerResult
from dexec_tools.loadgen.worker import ACCEPTED, COMPLETED, READY, SLOTS, Shared, worker_main

POLL_SECONDS = 0.1  # how often the progress bar is refreshed
READY_TIMEOUT_SECONDS = 60.0  # spawning, importing and opening sockets
JOIN_TIMEOUT_SECONDS = 10.0


class WorkerFailed(RuntimeError):
    pass


@dataclass
class RunOutcome:
    results: list[WorkerResult]
    parent_cpu: ProcessCpu


def run_workers(
    config: RunConfig, progress: Progress, on_start: Callable[[], None] = lambda: None
) -> RunOutcome:
    """Run the workers to the end of the run and return their samples, in worker order.

    `on_start` is called as the workers are released, when the measured span begins.
    """
    context = multiprocessing.get_context("spawn")
    plans = plan_workers(config)
    shared = Shared(
        counters=context.Array("q", SLOTS * len(plans), lock=False),
        start=context.Event(),
        results=context.Queue(),
    )
    processes = [
        context.Process(
            target=worker_main,
            args=(config, plan, shared),
            name=f"dexec-load-worker-{plan.worker}",
            daemon=True,
        )
        for plan in plans
    ]
    for process in processes:
        process.start()
    collected: dict[int, WorkerResult] = {}
    finished = False
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(shared.counters[SLOTS * p.worker + READY] for p in plans):
            _poll(shared, processes, collected)
            if time.monotonic() > deadline:
                raise WorkerFailed(f"workers not ready after {READY_TIMEOUT_SECONDS:.0f} s")
        me = psutil.Process()
        cpu_before, wall_before = me.cpu_times(), time.monotonic()
        on_start()
        shared.start.set()
        progress.start()
        while len(collected) < len(plans):
            _poll(shared, processes, collected)
            progress.update(_total(shared, plans, ACCEPTED), _total(shared, plans, COMPLETED))
        cpu_after, wall_after = me.cpu_times(), time.monotonic()
        finished = True
    finally:
        _stop(processes, graceful=finished)
    parent = ProcessCpu(
        name="parent",
        cpu_seconds=(cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        wall_seconds=wall_after - wall_before,
    )
    return RunOutcome([collected[p.worker] for p in plans], parent)


def _total(shared: Shared, plans: list[WorkerPlan], slot: int) -> int:
    return sum(shared.counters[SLOTS * p.worker + slot] for p in plans)


def _poll(shared: Shared, processes: list[BaseProcess], collected: dict[int, WorkerResult]) -> None:
    """Wait up to POLL_SECONDS for a worker's result; fail if a worker failed or vanished."""
    try:
        kind, worker, payload = shared.results.get(timeout=POLL_SECONDS)
    except queue.Empty:
        # A worker that died without a word (killed, out of memory) would be waited for forever.
        for number, process in enumerate(processes):
            if number not in collected and process.exitcode not in (None, 0):
                raise WorkerFailed(f"worker {number} died (exit code {process.exitcode})") from None
        return
    if kind == "error":
        raise WorkerFailed(f"worker {worker} failed:\n{payload}")
    collected[worker] = payload


def _stop(processes: list[BaseProcess], graceful: bool) -> None:
    """Reap the workers; after a failure, do not wait for the others to finish their share."""
    for process in processes:
        if graceful:
            process.join(JOIN_TIMEOUT_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join(JOIN_TIMEOUT_SECONDS)
