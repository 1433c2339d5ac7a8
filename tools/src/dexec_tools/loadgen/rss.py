"""Peak resident memory of the engine's processes, sampled while the run goes on, and the CPU
each one used over the run (on a shared machine, where the cores went).

Which processes: `--services-pids`, or found from the API's port. The process listening on it
is the api; its parent is the launcher (`dexec-dev`), whose children are the other services,
NATS and Postgres of that same stack, so several stacks on one machine are never mixed up. A
listener that is not a dexec service is an in-process stack (as in the tests) and is sampled
as one. Postgres runs a process per connection: its figure is the sum over the postmaster and
its children (which counts the shared buffers each backend touched more than once), and its
CPU that of the processes alive at the end of the run.

The run's window ends with the last terminal event a client sees, but the engine may still be
working for the run then (a durable consumer behind the live stream, the recorder's last
batches): `settle` goes on until the engine's CPU use drops to idle, so that the CPU of all of
the run's work is counted too.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

SAMPLE_SECONDS = 0.2
CHILDREN_REFRESH_SAMPLES = 5  # Postgres backends come and go: re-list them every second
MIB = 1024 * 1024
SERVICE_MODULES = {
    "api": "dexec_api.main",
    "router": "dexec_router.main",
    "executor": "dexec_executor.main",
    "notifier": "dexec_notifier.main",
}
SERVER_NAMES = {"nats-server": "nats", "postgres": "postgres"}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", ""})
# The engine is settled when all its processes together ran, or waited for a core to run on,
# less than this share of one core over a step (a stack at rest here uses 2-3%: metrics
# samplers, probes, NATS heartbeats). The wait counts because on a busy machine a process
# still working may get almost no CPU for a while, and low CPU alone would call it idle.
SETTLED_PERCENT_OF_ONE_CORE = 10.0
SETTLE_STEP_SECONDS = 1.0


@dataclass
class Watched:
    name: str
    pid: int
    with_children: bool = False  # count the process tree (Postgres), not just the process


@dataclass
class Discovery:
    watched: list[Watched] = field(default_factory=list)
    note: str = ""


def service_name(process: psutil.Process) -> str | None:
    """The service a process is (api, router, executor, notifier, nats, postgres), or None."""
    try:
        command = " ".join(process.cmdline())
        name = process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for service, module in SERVICE_MODULES.items():
        if module in command:
            return service
    return SERVER_NAMES.get(name)


def parse_pids(spec: str) -> Discovery:
    """`api=123,router=456,postgres=789` (Postgres by its postmaster's pid)."""
    watched = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, pid = item.partition("=")
        if not pid.isdigit():
            raise ValueError(f"--services-pids wants name=pid, not {item!r}")
        watched.append(Watched(name.strip(), int(pid), with_children=name.strip() == "postgres"))
    return Discovery(watched, "from --services-pids")


def discover(api_url: str) -> Discovery:
    url = urlsplit(api_url)
    if (url.hostname or "") not in LOCAL_HOSTS:
        return Discovery(note=f"the API at {url.hostname} is not on this machine: no RSS")
    port = url.port or (443 if url.scheme == "https" else 80)
    listener = _listener(port)
    if listener is None:
        return _by_command_line(port)
    if service_name(listener) != "api":
        return Discovery(
            [Watched("stack (in-process)", listener.pid)],
            f"port {port} is served by pid {listener.pid}, not a dexec-api process",
        )
    launcher = listener.parent()
    if launcher is None:
        return Discovery([Watched("api", listener.pid)], "the api has no parent process")
    return Discovery(
        _named(_children(launcher, recursive=False)),
        f"the stack whose api listens on :{port} (launcher pid {launcher.pid})",
    )


def _listener(port: int) -> psutil.Process | None:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        listening = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        if listening and conn.pid is not None:
            try:
                return psutil.Process(conn.pid)
            except psutil.NoSuchProcess:
                return None
    return None


def _by_command_line(port: int) -> Discovery:
    """No visible listener: take each service only if exactly one process on the machine is it."""
    candidates = [p for p in psutil.process_iter() if service_name(p) is not None]
    # Postgres: the postmaster, not its backends (their parent is a postgres process too).
    candidates = [p for p in candidates if not _is_postgres_child(p)]
    counts = Counter(service_name(p) for p in candidates)
    unique = [p for p in candidates if counts[service_name(p)] == 1]
    ambiguous = sorted(name for name, n in counts.items() if n > 1 and name)
    note = f"no process visibly listens on :{port}; matched by command line"
    if ambiguous:
        note += f" (several of {', '.join(ambiguous)}: pass --services-pids)"
    return Discovery(_named(unique), note)


def _is_postgres_child(process: psutil.Process) -> bool:
    try:
        parent = process.parent()
    except psutil.NoSuchProcess:
        return False
    return parent is not None and service_name(process) == "postgres" == service_name(parent)


def _named(processes: list[psutil.Process]) -> list[Watched]:
    """Name each process by its service; replicas get -2, -3, … in pid order."""
    seen: Counter[str] = Counter()
    watched = []
    for process in sorted(processes, key=lambda p: p.pid):
        name = service_name(process)
        if name is None:
            continue
        seen[name] += 1
        label = name if seen[name] == 1 else f"{name}-{seen[name]}"
        watched.append(Watched(label, process.pid, with_children=name == "postgres"))
    return watched


class ServiceSampler:
    """A thread that samples every watched process's RSS and keeps the peak of each; and the
    CPU seconds each used between `window_start` and `window_end` (the run itself)."""

    def __init__(self, watched: list[Watched], interval: float = SAMPLE_SECONDS) -> None:
        self._watched = watched
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dexec-load-rss", daemon=True)
        self.peaks: dict[str, int] = {w.name: 0 for w in watched}
        self._cpu_start: dict[str, float] = {}
        self._wall_start = 0.0
        self.cpu_percent: dict[str, float] = {}  # of one core, over the window
        # CPU seconds from the window's start until the engine settled, and how long after
        # the window that was (None: it did not settle in time, or was not waited for).
        self.cpu_seconds_to_settle: dict[str, float] = {}
        self.settle_seconds: float | None = None

    def __enter__(self) -> ServiceSampler:
        if self._watched:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def peaks_mib(self) -> dict[str, float]:
        return {name: round(peak / MIB, 1) for name, peak in self.peaks.items() if peak}

    def window_start(self) -> None:
        self._cpu_start = self._cpu_seconds()
        self._wall_start = time.monotonic()

    def window_end(self) -> None:
        wall = time.monotonic() - self._wall_start
        if not self._cpu_start or wall <= 0:
            return
        end = self._cpu_seconds()
        self.cpu_percent = {
            name: round(100 * (end[name] - self._cpu_start.get(name, 0.0)) / wall, 1)
            for name in end
        }

    def settle(self, timeout: float, step: float = SETTLE_STEP_SECONDS) -> None:
        """After `window_end`: measure until the engine is idle (or `timeout` has passed)."""
        if not self._cpu_start or timeout <= 0:
            return
        ended = time.monotonic()
        before, waited_before = self._cpu_seconds(), self._runqueue_seconds()
        while time.monotonic() - ended < timeout:
            time.sleep(step)  # a sampling interval: CPU use is a rate over time
            after, waited_after = self._cpu_seconds(), self._runqueue_seconds()
            used = sum(after.values()) - sum(before.values())
            # A thread (or Postgres backend) that ended takes its wait out of the sum: never
            # less than none.
            waited = max(0.0, waited_after - waited_before)
            if 100 * (used + waited) / step < SETTLED_PERCENT_OF_ONE_CORE:
                self.settle_seconds = round(time.monotonic() - ended, 1)
                self.cpu_seconds_to_settle = {
                    name: round(seconds - self._cpu_start.get(name, 0.0), 3)
                    for name, seconds in after.items()
                }
                return
            before, waited_before = after, waited_after

    def _runqueue_seconds(self) -> float:
        """Seconds the watched processes' threads have spent runnable but not running."""
        total = 0.0
        for watched in self._watched:
            process = _process(watched.pid)
            if process is None:
                continue
            tree = [process, *(_children(process, recursive=True) if watched.with_children else [])]
            total += sum(runqueue_seconds(p.pid) for p in tree)
        return total

    def _cpu_seconds(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for watched in self._watched:
            process = _process(watched.pid)
            if process is None:
                continue
            seconds[watched.name] = tree_cpu_seconds(process, watched.with_children)
        return seconds

    def _run(self) -> None:
        processes = {w.name: _process(w.pid) for w in self._watched}
        trees: dict[str, list[psutil.Process]] = {}
        samples = 0
        # A periodic sampler, not synchronisation: wait() returns early when the run ends.
        while True:
            for watched in self._watched:
                process = processes[watched.name]
                if process is None:
                    continue
                if watched.with_children:
                    if samples % CHILDREN_REFRESH_SAMPLES == 0:
                        trees[watched.name] = [process, *_children(process, recursive=True)]
                    rss = sum(_rss(p) for p in trees[watched.name])
                else:
                    rss = _rss(process)
                self.peaks[watched.name] = max(self.peaks[watched.name], rss)
            samples += 1
            if self._stop.wait(self._interval):
                return


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _children(process: psutil.Process, recursive: bool) -> list[psutil.Process]:
    try:
        return process.children(recursive=recursive)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def tree_cpu_seconds(process: psutil.Process, with_children: bool = True) -> float:
    """CPU seconds of a process and (Postgres: a backend per connection) its live children."""
    tree = [process, *(_children(process, recursive=True) if with_children else [])]
    return sum(cpu_seconds(p) for p in tree)


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time so far (0 for a process that is gone)."""
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return float(times.user + times.system)


def runqueue_seconds(pid: int) -> float:
    """Time a process's threads have waited for a core so far, from the scheduler's own
    accounting (the second field of each thread's /proc schedstat, in nanoseconds). 0 where
    the kernel does not keep it or the process is gone."""
    total = 0
    for schedstat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(schedstat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended while being read
    return total / 1e9


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0
