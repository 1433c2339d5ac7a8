"""Which of the local stack's processes waits when the machine's cores are full.

Every server and service of `dexec-dev` runs in a session of its own (so a terminal's Ctrl-C
reaches only the launcher). On Linux with autogroup scheduling on
(`/proc/sys/kernel/sched_autogroup_enabled`, the default of most distributions), each session
is a scheduling group and the cores are shared equally between the groups that want them,
whatever a process's nice value. Giving a part more or less CPU therefore means setting the nice
value of its session's autogroup (`/proc/PID/autogroup`); the process's own nice value is set as
well, which is what counts where autogroups are off.

Lowering a priority (a positive nice value) needs no privilege; raising one needs root.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

# "latency": the stages that read a durable queue (router, executor) yield the cores to the
# ones a client waits on (the API's answer, the notifier's WebSocket frames) and to NATS. Their
# work waits in JetStream, durably and under backpressure, instead of in sockets.
PROFILES: dict[str, dict[str, int]] = {
    "equal": {},
    "latency": {"router": 10, "executor": 10},
}
MIN_NICE, MAX_NICE = -20, 19


def parse_priorities(text: str, parts: Sequence[str]) -> dict[str, int]:
    """A profile's name, or `part=nice[,part=nice...]` (e.g. `router=10,executor=10`) naming
    some of `parts`."""
    text = text.strip()
    if text in PROFILES:
        return dict(PROFILES[text])
    priorities: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        part, sep, value = item.partition("=")
        if not sep or part not in parts:
            raise ValueError(
                f"{item!r}: want one of {', '.join(PROFILES)} or PART=NICE "
                f"with PART one of {', '.join(parts)}"
            )
        try:
            nice = int(value)
        except ValueError:
            raise ValueError(f"{item!r}: the nice value must be an integer") from None
        if not MIN_NICE <= nice <= MAX_NICE:
            raise ValueError(f"{item!r}: nice values run from {MIN_NICE} to {MAX_NICE}")
        priorities[part] = nice
    return priorities


def autogroups_enabled() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def set_priority(pid: int, nice: int) -> None:
    """The nice value of `pid`'s autogroup (when autogroups are on) and of each of its threads
    (children forked later inherit it); raises OSError when not permitted."""
    if autogroups_enabled():
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    # Linux keeps a nice value per thread: a multi-threaded server needs each one set.
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")] if os.path.isdir("/proc") else []
    for tid in threads or [pid]:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, tid, nice)


def autogroup_nice(pid: int) -> int | None:
    """What `/proc/PID/autogroup` says the group's nice value is (None without autogroups)."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-123 nice 10"
    except OSError:
        return None
    return int(text.split("nice")[-1])
