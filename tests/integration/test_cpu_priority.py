"""Setting a running process's CPU priority: its session's autogroup and every thread."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from dexec_tools.cpu_priority import autogroup_nice, autogroups_enabled, set_priority

# Starts a second thread, says so, then waits: the thread exists before the priority is set.
THREADED = (
    "import sys, threading; threading.Thread(target=sys.stdin.read, daemon=True).start(); "
    "print('ready', flush=True); sys.stdin.read()"
)


@pytest.fixture
def threaded_child() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", THREADED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as dexec-dev starts every part: a session, an autogroup
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_every_thread_and_the_autogroup_get_the_nice_value(
    threaded_child: subprocess.Popen[str],
) -> None:
    threads = psutil.Process(threaded_child.pid).threads()
    assert len(threads) == 2
    set_priority(threaded_child.pid, 7)
    assert [psutil.Process(t.id).nice() for t in threads] == [7, 7]
    if autogroups_enabled():
        assert autogroup_nice(threaded_child.pid) == 7
    else:
        assert autogroup_nice(threaded_child.pid) in (None, 0)


def test_a_process_that_is_gone_is_an_os_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(OSError):
        set_priority(proc.pid, 5)
