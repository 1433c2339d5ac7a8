"""Before pytest-timeout ends a stuck test, print what each asyncio task is waiting for.

pytest-timeout prints the threads' stacks, and for an asyncio test that is the event loop
waiting in select(): it does not say which await is stuck. So a timer fires a little before
the timeout, and a signal handler (Python runs it in the main thread between bytecodes, also
while the loop waits) prints the stack of every task of the running loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

REPORT_SIGNAL = signal.SIGUSR2
# The report comes this long before the timeout (or at nine tenths of a short one).
LEAD_SECONDS = 15.0


def _report(signum: int, frame: FrameType | None) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        print("\n--- hang report: no event loop is running", file=sys.stderr)
        return
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    print(f"\n--- hang report: {len(tasks)} pending tasks", file=sys.stderr)
    for task in tasks:
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(limit=25, file=sys.stderr)
    sys.stderr.flush()


def _timeout(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker and marker.args:
        return float(marker.args[0])
    return float(item.config.getoption("timeout", None) or item.config.getini("timeout") or 0)


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(REPORT_SIGNAL, _report)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout(item)
    timer = None
    if timeout > 0:
        lead = min(LEAD_SECONDS, timeout / 10)
        timer = threading.Timer(timeout - lead, os.kill, (os.getpid(), REPORT_SIGNAL))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
