"""`dexec-dev`: the whole engine on this machine with one command, no Docker.

Starts NATS (JetStream) and Postgres from `dexec_tools.servers` with data kept in `--data-dir`
across runs, applies the migrations, starts the api, router, executor and notifier services as
child processes and waits until the HTTP services are ready. Ctrl-C (or SIGTERM) stops the
services in reverse order, then Postgres and NATS.

Postgres runs with `fast=True` (fsync and full_page_writes off): fine for a dev database,
which keeps every acknowledged commit through a crash of the server but not necessarily of
the machine.

Webhooks may go to receivers on this machine or network (`LOCAL_DEFAULTS`: private targets
allowed, which production refuses); a `DEXEC_*` variable in the environment overrides that.

Output: stdout gets the launcher's messages and, once everything is up, the URLs, the `--print-env`
lines and exactly one machine-readable line `DEXEC READY api=... notifier=...`. Service output goes
to `DATA/logs/<service>.log` and, prefixed with the service name, to stderr (unless `--quiet`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

import httpx

from dexec_tools.cpu_priority import PROFILES, parse_priorities, set_priority
from dexec_tools.servers import (
    LOCALHOST,
    NatsServer,
    PostgresServer,
    ServerError,
    free_port,
    log_tail,
    port_is_free,
    run_header,
)

SERVICES = ("api", "router", "executor", "notifier")
# What `--cpu-priority` can name: the services and the two servers.
PARTS = (*SERVICES, "nats", "postgres")
# Workers that scale by adding processes on the same durable consumers (--replicas).
REPLICATED = {"router": "DEXEC_ROUTER_METRICS_PORT", "executor": "DEXEC_EXECUTOR_METRICS_PORT"}
SERVICE_STOP_TIMEOUT = 10.0
SUPERVISE_INTERVAL = 0.5
READY_POLL_INTERVAL = 0.1
LOCK_FILE = ".lock"
EXAMPLE_ORDER = (
    '{"type":"market","tokenIn":"SOL","tokenOut":"USDC","amount":"1.5","slippageBps":50}'
)

# Settings for a local engine that differ from the production defaults; the environment wins.
LOCAL_DEFAULTS = {
    # Local webhook receivers (127.0.0.1) are the common case here.
    "DEXEC_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
}

_echo_lock = threading.Lock()


class StackError(Exception):
    """The stack could not start, or a part of it died; the message says which and why."""


class StopRequested(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP (BaseException, like KeyboardInterrupt,
    so that no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def say(message: str) -> None:
    print(f"dexec-dev: {message}", flush=True)


# --- arguments and ports ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    api: int
    notifier: int
    nats: int
    pg: int
    router_metrics: int
    executor_metrics: int


def tcp_port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dexec-dev",
        description="Run the dexec engine locally (NATS, Postgres, services).",
        epilog="Webhooks may go to local receivers (127.0.0.1, private networks): "
        "DEXEC_WEBHOOK_ALLOW_PRIVATE_TARGETS is true here, false in production; "
        "set it to false in the environment to see the refusal.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".dexec"), help="default: ./.dexec")
    parser.add_argument("--api-port", type=tcp_port, default=8000)
    parser.add_argument("--notifier-port", type=tcp_port, default=8001)
    parser.add_argument("--nats-port", type=tcp_port, default=4222)
    parser.add_argument("--pg-port", type=tcp_port, default=5432)
    parser.add_argument("--router-metrics-port", type=tcp_port, default=9101)
    parser.add_argument("--executor-metrics-port", type=tcp_port, default=9102)
    parser.add_argument("--fresh", action="store_true", help="delete the data dir first")
    parser.add_argument(
        "--print-env", action="store_true", help="print DEXEC_* variables as export lines"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not echo service output (it is still logged)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long the API and notifier may take to answer /readyz",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        choices=range(1, 9),
        metavar="N",
        help="processes each of router and executor (default 1; extra ones export metrics on "
        "free ports, named in the launcher's output)",
    )
    parser.add_argument(
        "--engine-python",
        default=sys.executable,
        metavar="PATH",
        help="the interpreter the four services run on (default: this one); `make bench` "
        "gives one whose environment holds only what the services' images install",
    )
    parser.add_argument(
        "--cpu-priority",
        type=_priorities,
        default={},
        metavar="PROFILE|PART=NICE,...",
        help=f"which parts yield when the cores are full: {' or '.join(PROFILES)} (default "
        "equal: the kernel shares the cores equally), or nice values, e.g. router=10,executor=10 "
        f"(parts: {', '.join(PARTS)})",
    )
    return parser.parse_args(argv)


def _priorities(text: str) -> dict[str, int]:
    try:
        return parse_priorities(text, PARTS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def choose_port(requested: int, what: str) -> int:
    """`requested` if it is free, else a free port (and say so)."""
    if port_is_free(requested):
        return requested
    port = free_port()
    say(f"port {requested} for {what} is busy, using {port} instead")
    return port


def choose_ports(args: argparse.Namespace) -> Ports:
    return Ports(
        api=choose_port(args.api_port, "the API"),
        notifier=choose_port(args.notifier_port, "the notifier"),
        nats=choose_port(args.nats_port, "NATS"),
        pg=choose_port(args.pg_port, "Postgres"),
        router_metrics=choose_port(args.router_metrics_port, "the router's metrics"),
        executor_metrics=choose_port(args.executor_metrics_port, "the executor's metrics"),
    )


# --- data directory --------------------------------------------------------------------------


def clear_data_dir(data_dir: Path) -> None:
    """--fresh: delete what is in the data dir (we hold its lock), but only if it looks like one
    of ours: a typo in --data-dir must not wipe a home directory."""
    ours = {"nats", "postgres", "logs", LOCK_FILE}
    entries = list(data_dir.iterdir())
    if not {p.name for p in entries} <= ours:
        raise StackError(f"--fresh: {data_dir} has files dexec-dev did not create; not deleting it")
    say(f"deleting the data in {data_dir}")
    for entry in entries:
        if entry.name != LOCK_FILE:
            shutil.rmtree(entry)


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """An exclusive lock on the data dir, held until we exit (the OS drops it even on SIGKILL):
    two launchers on one data dir would corrupt it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / LOCK_FILE).open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StackError(f"another dexec-dev is already using {data_dir}") from None
    return lock


# --- services --------------------------------------------------------------------------------


def service_env(ports: Ports, nats: NatsServer, pg: PostgresServer) -> dict[str, str]:
    return {
        **LOCAL_DEFAULTS,
        **os.environ,
        "DEXEC_NATS_URL": nats.url,
        "DEXEC_DATABASE_URL": pg.url(),
        "DEXEC_API_HOST": LOCALHOST,
        "DEXEC_API_PORT": str(ports.api),
        "DEXEC_NOTIFIER_HOST": LOCALHOST,
        "DEXEC_NOTIFIER_PORT": str(ports.notifier),
        "DEXEC_PUBLIC_WS_URL": f"ws://{LOCALHOST}:{ports.notifier}",
        "DEXEC_ROUTER_METRICS_PORT": str(ports.router_metrics),
        "DEXEC_EXECUTOR_METRICS_PORT": str(ports.executor_metrics),
        "PYTHONUNBUFFERED": "1",  # so service logs reach the files and terminal as they happen
    }


def _echo(name: str, line: bytes) -> None:
    text = line.decode(errors="replace").rstrip("\n")
    # A closed terminal must not stop the copy to the log file.
    with _echo_lock, contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{name:>8} | {text}\n")
        sys.stderr.flush()


class Service:
    """One service, `python -m dexec_<name>.main`, in its own session (so that a terminal Ctrl-C
    reaches only the launcher); its output is copied to a log file and, optionally, stderr."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        echo: bool,
        module: str | None = None,
        python: str = sys.executable,
    ) -> None:
        self.name = name
        self.module = module or f"dexec_{name}.main"
        self.python = python
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.echo = echo
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        logf = self.log_path.open("ab")
        logf.write(run_header(f"starting {self.name}"))
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", self.module],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            logf.close()
            raise
        self._pump = threading.Thread(
            target=self._copy_output, args=(logf,), name=f"{self.name}-log", daemon=True
        )
        self._pump.start()

    def _copy_output(self, logf: IO[bytes]) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with logf:
            for line in iter(self._proc.stdout.readline, b""):
                logf.write(line)
                logf.flush()
                if self.echo:
                    _echo(self.name, line)

    def stop(self, timeout: float = SERVICE_STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; to the whole process group, in case the
        service runs helpers of its own."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {timeout:.0f}s, killing it")
                self._signal_group(signal.SIGKILL)
                proc.wait()
        self._drain()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs (chaos tests)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal_group(signal.SIGKILL)
            proc.wait()
        self._drain()

    def tail(self) -> str:
        self._drain()
        return log_tail(self.log_path)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)  # start_new_session: its pgid is its pid

    def _drain(self) -> None:
        """Let the copier write the last lines of a finished process to the log."""
        if self._pump is not None:
            self._pump.join(timeout=2.0)


# --- the stack -------------------------------------------------------------------------------


class DevStack:
    def __init__(
        self,
        data_dir: Path,
        ports: Ports,
        *,
        echo: bool,
        start_timeout: float,
        replicas: int = 1,
        cpu_priority: dict[str, int] | None = None,
        engine_python: str = sys.executable,
    ) -> None:
        self.ports = ports
        self.engine_python = engine_python
        self.replicas = replicas
        self.cpu_priority = cpu_priority or {}
        self.echo = echo
        self.start_timeout = start_timeout
        self.log_dir = data_dir / "logs"
        self.nats = NatsServer(data_dir / "nats", port=ports.nats)
        self.pg = PostgresServer(data_dir / "postgres", port=ports.pg, fast=True)
        self.env: dict[str, str] = {}
        self.services: list[Service] = []

    @property
    def api_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.api}"

    @property
    def notifier_url(self) -> str:
        return f"ws://{LOCALHOST}:{self.ports.notifier}"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        say(f"starting NATS on port {self.ports.nats}")
        self.nats.start()
        self._prioritise("nats", self.nats.pid)
        say(f"starting Postgres on port {self.ports.pg}")
        self.pg.start()
        self._prioritise("postgres", self.pg.pid)
        self.env = service_env(self.ports, self.nats, self.pg)
        self.migrate()
        say(f"starting {', '.join(SERVICES)} (logs in {self.log_dir})")
        for name in SERVICES:
            service = Service(name, self.env, self.log_dir, self.echo, python=self.engine_python)
            self.services.append(service)
            service.start()
            self._prioritise(name, service.pid)
            if name in REPLICATED:
                self._start_replicas(name)
        self.wait_ready()

    def _start_replicas(self, name: str) -> None:
        for index in range(2, self.replicas + 1):
            metrics_port = free_port()
            env = {**self.env, REPLICATED[name]: str(metrics_port)}
            replica = Service(
                f"{name}-{index}",
                env,
                self.log_dir,
                self.echo,
                f"dexec_{name}.main",
                python=self.engine_python,
            )
            self.services.append(replica)
            replica.start()
            self._prioritise(name, replica.pid)
            say(f"{replica.name} exports metrics on port {metrics_port}")

    def _prioritise(self, part: str, pid: int | None) -> None:
        nice = self.cpu_priority.get(part)
        if nice is None or pid is None:
            return
        try:
            set_priority(pid, nice)
        except OSError as exc:
            raise StackError(f"could not set {part}'s CPU priority to nice {nice}: {exc}") from exc
        say(f"{part} runs at nice {nice}")

    def migrate(self) -> None:
        say("applying migrations")
        log_path = self.log_dir / "migrate.log"
        with log_path.open("ab") as logf:
            logf.write(run_header("applying migrations"))
            logf.flush()
            try:
                subprocess.run(
                    [sys.executable, "-m", "dexec.db.migrate"],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    check=True,
                )
            except subprocess.CalledProcessError as err:
                raise StackError(
                    f"migrations failed with code {err.returncode}; "
                    f"log tail ({log_path}):\n{log_tail(log_path)}"
                ) from None

    def wait_ready(self) -> None:
        """Poll the readyz endpoints until both answer 200, failing fast if anything dies."""
        pending = [f"{self.api_url}/readyz", f"http://{LOCALHOST}:{self.ports.notifier}/readyz"]
        deadline = time.monotonic() + self.start_timeout
        # trust_env=False: an HTTP(S)_PROXY from the environment must not see local checks.
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while True:
                self.check_alive()
                pending = [url for url in pending if not _answers_200(client, url)]
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"not ready within {self.start_timeout:.0f}s: {', '.join(pending)}; "
                        f"see the logs in {self.log_dir}"
                    )
                time.sleep(READY_POLL_INTERVAL)

    def check_alive(self) -> None:
        """Raise StackError, with the log tail, if a service or server has exited."""
        for service in self.services:
            code = service.returncode
            if code is not None:
                raise StackError(
                    f"{service.name} exited with code {code}; "
                    f"log tail ({service.log_path}):\n{service.tail()}"
                )
        for server in (self.nats, self.pg):
            if not server.running:
                raise StackError(
                    f"{server.name} exited; log tail ({server.log_path}):\n"
                    f"{log_tail(server.log_path)}"
                )

    def supervise(self) -> NoReturn:
        """Block until something dies (StackError) or a signal arrives (StopRequested)."""
        while True:
            time.sleep(SUPERVISE_INTERVAL)
            self.check_alive()

    def stop(self) -> None:
        """Services in reverse start order, then Postgres, then NATS; keep going on errors so
        that nothing is left running."""
        for service in reversed(self.services):
            _stop_quietly(service.name, service.stop)
        _stop_quietly("Postgres", self.pg.stop)
        _stop_quietly("NATS", self.nats.stop)

    def announce(self, print_env: bool) -> None:
        lines = [
            "",
            "dexec is up:",
            f"  API        {self.api_url}  (docs: {self.api_url}/docs)",
            f"  WebSocket  {self.notifier_url}/ws/orders/{{orderId}}",
            f"  NATS       {self.nats.url}  (monitoring: {self.nats.monitor_url})",
            f"  Postgres   {self.pg.dsn()}",
            f"  Logs       {self.log_dir}/<service>.log, {self.nats.log_path}, {self.pg.log_path}",
            "",
            "Try:",
            f"  curl -s -X POST {self.api_url}/api/orders/execute "
            f"-H 'content-type: application/json' -d '{EXAMPLE_ORDER}'",
            "",
            "Press Ctrl-C to stop.",
        ]
        if print_env:
            lines += [
                f"export {key}={shlex.quote(value)}"
                for key, value in sorted(self.env.items())
                if key.startswith("DEXEC_")
            ]
        lines.append(f"DEXEC READY api={self.api_url} notifier={self.notifier_url}")
        print("\n".join(lines), flush=True)


def _answers_200(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_quietly(name: str, stop: Callable[[], None]) -> None:
    try:
        stop()
    except Exception as err:
        say(f"error while stopping {name}: {err}")


# --- signals and main ------------------------------------------------------------------------

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signum)


def _already_stopping(signum: int, _frame: FrameType | None) -> None:
    say(f"got {signal.Signals(signum).name} while stopping; still stopping, please wait")


def _set_signal_handlers(handler: Callable[[int, FrameType | None], None]) -> None:
    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Show the servers module's notes (e.g. permission changes) but not httpx's request log.
    logging.basicConfig(level=logging.WARNING, format="dexec-dev: %(message)s")
    logging.getLogger("dexec_tools").setLevel(logging.INFO)

    data_dir = args.data_dir.absolute()
    code = 1
    _set_signal_handlers(_raise_stop)
    stack: DevStack | None = None
    lock: IO[bytes] | None = None
    try:
        lock = lock_data_dir(data_dir)
        if args.fresh:
            clear_data_dir(data_dir)
        stack = DevStack(
            data_dir,
            choose_ports(args),
            echo=not args.quiet,
            start_timeout=args.start_timeout,
            replicas=args.replicas,
            cpu_priority=args.cpu_priority,
            engine_python=args.engine_python,
        )
        stack.start()
        stack.announce(args.print_env)
        stack.supervise()
    except StopRequested as stop:
        say(f"got {signal.Signals(stop.signum).name}, stopping")
        code = 0
    except (StackError, ServerError) as err:
        say(f"error: {err}")
    finally:
        _set_signal_handlers(_already_stopping)
        if stack is not None:
            stack.stop()
            say("stopped")
        if lock is not None:
            lock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
