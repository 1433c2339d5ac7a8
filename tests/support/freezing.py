"""Freezing a test's own server (SIGSTOP), as a stalled or overloaded machine would.

A frozen server keeps its sockets: the kernel still accepts connections and buffers what
clients send, but nothing is ever answered. That is the case no error reports, only a
deadline, and a test needs it exactly: a stopped server (connection refused) is another.
Only ever freeze a server the test started itself, never a shared one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import psutil


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """SIGSTOP `pid` and its descendants (Postgres' backends); SIGCONT them all at the end,
    whatever happens in between."""
    stopped: list[int] = []
    try:
        # The parent first: a stopped postmaster forks no new backend after the listing.
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(child.pid, signal.SIGSTOP)
                stopped.append(child.pid)
        yield
    finally:
        for stopped_pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped_pid, signal.SIGCONT)
