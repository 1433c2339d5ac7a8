"""The load generator's CPU count goes on after the run until the engine is idle."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from dexec_tools.loadgen.rss import ServiceSampler, Watched

# Once told to go (after the window has started), burns this much CPU (not wall-clock time,
# so a busy machine does not shorten it), then idles.
BUSY_CPU_SECONDS = 1.5
BUSY_THEN_IDLE = f"""
import sys, time
sys.stdin.readline()
print("busy", flush=True)
start = time.process_time()
while time.process_time() - start < {BUSY_CPU_SECONDS}:
    pass
print("idle", flush=True)
time.sleep(600)
"""
ALWAYS_BUSY = "while True:\n    pass\n"
# Takes a core for this much CPU, then exits.
COMPETITOR_CPU_SECONDS = 2.0
BUSY_FOR_A_WHILE = f"""
import time
start = time.process_time()
while time.process_time() - start < {COMPETITOR_CPU_SECONDS}:
    pass
"""


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def start(spawn: list[subprocess.Popen[str]], code: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    spawn.append(process)
    return process


def test_work_after_the_window_is_counted_until_the_engine_is_idle(
    spawn: list[subprocess.Popen[str]],
) -> None:
    process = start(spawn, BUSY_THEN_IDLE)
    with ServiceSampler([Watched("worker", process.pid)]) as sampler:
        sampler.window_start()
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout is not None and process.stdout.readline() == "busy\n"
        sampler.window_end()  # the "run" ends at once; the worker is still busy
        sampler.settle(timeout=60, step=0.5)
    assert process.stdout.readline() == "idle\n"
    assert sampler.settle_seconds is not None
    # All of the busy CPU falls between the window's start and the settle point.
    assert sampler.cpu_seconds_to_settle["worker"] >= BUSY_CPU_SECONDS * 0.95


def test_an_engine_that_never_goes_idle_has_no_settle_figure(
    spawn: list[subprocess.Popen[str]],
) -> None:
    process = start(spawn, ALWAYS_BUSY)
    with ServiceSampler([Watched("worker", process.pid)]) as sampler:
        sampler.window_start()
        sampler.window_end()
        sampler.settle(timeout=2, step=0.5)
    assert sampler.settle_seconds is None
    assert sampler.cpu_seconds_to_settle == {}


def test_a_worker_starved_of_cpu_is_not_taken_for_idle(
    spawn: list[subprocess.Popen[str]],
) -> None:
    """As on a busy machine: the worker shares one core with a process of normal priority
    while its own is the lowest, so for about two seconds it gets next to no CPU although it
    has work. It waits for the core all that time, and the settle waits for it."""
    core = min(os.sched_getaffinity(0))
    worker = start(spawn, BUSY_THEN_IDLE)
    psutil.Process(worker.pid).cpu_affinity([core])
    psutil.Process(worker.pid).nice(19)
    with ServiceSampler([Watched("worker", worker.pid)]) as sampler:
        sampler.window_start()
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline() == "busy\n"
        competitor = start(spawn, BUSY_FOR_A_WHILE)
        psutil.Process(competitor.pid).cpu_affinity([core])
        sampler.window_end()
        sampler.settle(timeout=60, step=0.5)
    assert competitor.poll() == 0  # it did take the core, and is done
    assert worker.stdout.readline() == "idle\n"
    assert sampler.settle_seconds is not None
    assert sampler.cpu_seconds_to_settle["worker"] >= BUSY_CPU_SECONDS * 0.95
