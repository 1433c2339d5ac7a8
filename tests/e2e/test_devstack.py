"""End to end: the engine that `make up` runs (`dexec-dev`), driven over real HTTP and WebSocket.

The launcher runs as a subprocess exactly as a developer runs it (`python -m
dexec_tools.devstack`), with its own data dir and free ports, so the test covers embedded NATS and
Postgres, the migrations, the four service processes, the readiness line and a clean shutdown.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dexec_tools.cpu_priority import autogroup_nice
from dexec_tools.servers import free_port, log_tail, port_is_free

pytestmark = pytest.mark.e2e

T = TypeVar("T")

READY_PREFIX = "DEXEC READY "
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
ORDER_TIMEOUT = 60.0
POLL_INTERVAL = 0.1
SERVICES = ("api", "router", "executor", "notifier")
HAPPY_PATH = ["pending", "routing", "routed", "building", "submitted", "confirmed"]
# The README's example order, with more slippage room: the simulated price of each pool drifts by
# up to ±60 bps per ~10 s epoch, so with 50 bps an order that straddles an epoch boundary may
# rightly fail with "slippage exceeded", and this test is about the plumbing, not the market.
ORDER = {
    "type": "market",
    "tokenIn": "SOL",
    "tokenOut": "USDC",
    "amount": "1.5",
    "slippageBps": 300,
}


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call `probe` every POLL_INTERVAL until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class Launcher:
    """`python -m dexec_tools.devstack` in its own session, its output collected by threads."""

    def __init__(self, *extra_args: str) -> None:
        # Not pytest's tmp_path: as root, Postgres runs as an unprivileged user who must be able
        # to traverse every parent directory, and /tmp/pytest-of-root is kept at 0700.
        self.data_dir = Path(tempfile.mkdtemp(prefix="dexec-e2e-"))
        ports = _distinct_free_ports(6)
        self.api_port, self.notifier_port, self.nats_port, self.pg_port = ports[:4]
        self.api_url = ""
        self.ws_url = ""
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.children: list[psutil.Process] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        # Hermetic: no DEXEC_* setting from the caller's environment reaches the services.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEXEC_")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dexec_tools.devstack",
                "--data-dir",
                str(self.data_dir),
                "--api-port",
                str(self.api_port),
                "--notifier-port",
                str(self.notifier_port),
                "--nats-port",
                str(self.nats_port),
                "--pg-port",
                str(self.pg_port),
                "--router-metrics-port",
                str(ports[4]),
                "--executor-metrics-port",
                str(ports[5]),
                "--quiet",
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, True)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, False)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    def _read(self, stream: Any, lines: list[str], announce: bool) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if announce:
                self._lines.put(lines[-1])
        if announce:
            self._lines.put(None)  # EOF: the launcher has exited

    # --- start -----------------------------------------------------------------------------------

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Read stdout until the `DEXEC READY` line; fail with the logs if it never comes."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(f"dexec-dev printed no READY line within {timeout:.0f}s")
            try:
                line = self._lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
                self.fail(f"dexec-dev exited with code {self.proc.poll()} before it was ready")
            if line.startswith(READY_PREFIX):
                fields = dict(part.split("=", 1) for part in line[len(READY_PREFIX) :].split())
                self.api_url, self.ws_url = fields["api"], fields["notifier"]
                self.children = self.snapshot_children()
                return

    def snapshot_children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    @property
    def notifier_http_url(self) -> str:
        return "http" + self.ws_url.removeprefix("ws")

    # --- stop ------------------------------------------------------------------------------------

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, as a service manager would send; the exit code, or None if still running."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def cleanup(self) -> None:
        """Whatever happened: kill what is left (the servers and services run in sessions of
        their own, so killing the launcher's group is not enough), then remove the data dir."""
        procs = {p.pid: p for p in [*self.children, *self.snapshot_children()]}
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # start_new_session: pgid == pid
        for proc in procs.values():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(list(procs.values()), timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.wait_output_closed()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def wait_output_closed(self, timeout: float = 5.0) -> None:
        """Let the readers take the last lines of an exited launcher."""
        for reader in self._readers:
            reader.join(timeout)

    # --- diagnostics -----------------------------------------------------------------------------

    def diagnostics(self) -> str:
        parts = [
            f"data dir: {self.data_dir}",
            "--- dexec-dev stdout:",
            *self.stdout[-60:],
            "--- dexec-dev stderr:",
            *self.stderr[-60:],
        ]
        logs = [
            *sorted((self.data_dir / "logs").glob("*.log")),
            *sorted((self.data_dir / "nats").glob("*.log")),
            *sorted((self.data_dir / "postgres").glob("*.log")),
        ]
        for path in logs:
            parts += [f"--- {path.relative_to(self.data_dir)} (tail):", log_tail(path, 30)]
        return "\n".join(parts)

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n{self.diagnostics()}", pytrace=False)


@contextlib.contextmanager
def launched(*extra_args: str) -> Iterator[Launcher]:
    launcher = Launcher(*extra_args)
    try:
        launcher.wait_ready()
        yield launcher
    finally:
        launcher.cleanup()


@pytest.fixture(scope="module")
def devstack() -> Iterator[Launcher]:
    with launched() as launcher:
        yield launcher


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: an HTTP(S)_PROXY in the environment must not see requests to 127.0.0.1.
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        yield client


# --- helpers ---------------------------------------------------------------------------------


def submit(http: httpx.Client, stack: Launcher, order: dict[str, Any] = ORDER) -> dict[str, Any]:
    resp = http.post(f"{stack.api_url}/api/orders/execute", json=order)
    assert resp.status_code == 202, f"{resp.status_code} {resp.text}"
    body: dict[str, Any] = resp.json()
    assert body["orderId"], body
    return body


def watch(ws_url: str, order_id: str, timeout: float) -> tuple[list[dict[str, Any]], int | None]:
    """Every message the notifier sends for the order until it closes the socket, and the close
    code; fails if the socket is still open after `timeout`."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with connect(f"{ws_url}/ws/orders/{order_id}", proxy=None, open_timeout=10) as ws:
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                messages.append(json.loads(ws.recv(timeout=remaining)))
        except ConnectionClosed:
            return messages, ws.close_code
        except TimeoutError:
            events = [m.get("event") for m in messages]
            raise AssertionError(
                f"the notifier did not close the socket within {timeout:.0f}s; events: {events}"
            ) from None


def wait_confirmed(http: httpx.Client, stack: Launcher, order_id: str) -> dict[str, Any]:
    last: list[str] = []

    def confirmed() -> dict[str, Any] | None:
        resp = http.get(f"{stack.api_url}/api/orders/{order_id}")
        last[:] = [f"{resp.status_code} {resp.text[:300]}"]
        if resp.status_code == 200 and resp.json().get("status") == "confirmed":
            return dict(resp.json())
        return None

    try:
        return eventually(confirmed, ORDER_TIMEOUT, f"GET /api/orders/{order_id} to be confirmed")
    except AssertionError as err:
        raise AssertionError(f"{err}; last answer: {last}") from None


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server on 127.0.0.1 that answers 200 to POSTs: its URL and the bodies so far."""
    bodies: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


# --- tests -----------------------------------------------------------------------------------


def test_health_and_readiness(devstack: Launcher, http: httpx.Client) -> None:
    for base in (devstack.api_url, devstack.notifier_http_url):
        for path in ("/healthz", "/readyz"):
            resp = http.get(base + path)
            assert resp.status_code == 200, f"GET {base}{path}: {resp.status_code} {resp.text}"


def test_market_order_is_routed_executed_and_streamed(
    devstack: Launcher, http: httpx.Client
) -> None:
    order_id = submit(http, devstack)["orderId"]

    messages, close_code = watch(devstack.ws_url, order_id, ORDER_TIMEOUT)

    assert [m["event"] for m in messages] == HAPPY_PATH, messages
    seqs = [m["seq"] for m in messages]
    assert all(a < b for a, b in pairwise(seqs)), f"seq not increasing: {seqs}"
    for message in messages:
        assert message["orderId"] == order_id, message
        assert {"status", "at", "attempt", "data"} <= message.keys(), message
    assert messages[-1]["status"] == "confirmed", messages[-1]
    assert close_code == 1000

    order = wait_confirmed(http, devstack, order_id)
    assert order["orderId"] == order_id
    assert (order["tokenIn"], order["tokenOut"]) == ("SOL", "USDC"), order
    assert [e["event"] for e in order["events"]] == HAPPY_PATH, order["events"]


def test_accepted_order_links_to_this_notifier(devstack: Launcher, http: httpx.Client) -> None:
    body = submit(http, devstack)
    assert body["links"]["stream"] == f"{devstack.ws_url}/ws/orders/{body['orderId']}"


def test_webhooks_reach_a_receiver_on_this_machine(devstack: Launcher, http: httpx.Client) -> None:
    """`make up` allows private webhook targets, which production refuses."""
    with webhook_receiver() as (url, bodies):
        submit(http, devstack, {**ORDER, "webhookUrl": url})
        eventually(lambda: len(bodies) >= len(HAPPY_PATH), ORDER_TIMEOUT, "every webhook")
    assert [json.loads(body)["event"] for body in bodies] == HAPPY_PATH


def test_sigterm_stops_the_launcher_and_everything_it_started(
    http: httpx.Client, tmp_path: Path
) -> None:
    # A stack of its own, so the test does not depend on the order the tests run in; with two
    # routers and two executors, so all of those are shown to start and stop too, and with
    # lower CPU priorities for some parts, checked on every process (and thread) of those.
    priorities = {"dexec_router.main": 10, "dexec_executor.main": 10, "nats-server": 3}
    # The services on an interpreter of their own (as `make bench` starts them): one that
    # marks the processes it runs, so the test can tell which did.
    engine_python = tmp_path / "engine-python"
    engine_python.write_text(f'#!/bin/sh\nDEXEC_TEST_ENGINE=1 exec {sys.executable} "$@"\n')
    engine_python.chmod(0o755)
    launch = ["--replicas", "2", "--cpu-priority", "router=10,executor=10,nats=3"]
    with launched(*launch, "--engine-python", str(engine_python)) as stack:
        # Real work first, so the services hold live NATS and Postgres connections when stopped.
        order_id = submit(http, stack)["orderId"]
        wait_confirmed(http, stack, order_id)

        children = stack.snapshot_children()
        commands = [" ".join(p.cmdline()) for p in children]
        expected = ["nats-server", "bin/postgres", *(f"dexec_{s}.main" for s in SERVICES)]
        for what in expected:
            assert any(what in c for c in commands), f"no {what} among children: {commands}"
        for replicated in ("dexec_router.main", "dexec_executor.main"):
            assert sum(replicated in c for c in commands) == 2, commands
        on_engine_python = [
            c for p, c in zip(children, commands, strict=True) if "DEXEC_TEST_ENGINE" in p.environ()
        ]
        assert sorted(on_engine_python) == sorted(c for c in commands if "dexec_" in c)
        assert len(on_engine_python) == 6  # api, notifier, two routers and two executors
        for proc, command in zip(children, commands, strict=True):
            want = next((n for part, n in priorities.items() if part in command), 0)
            assert _nice_values(proc) == {want}, command
            assert autogroup_nice(proc.pid) in (None, want), command

        code = stack.terminate(STOP_TIMEOUT)
        if code is None:
            stack.fail(f"dexec-dev still running {STOP_TIMEOUT:.0f}s after SIGTERM")
        if code != 0:
            stack.fail(f"dexec-dev exited with code {code} after SIGTERM")

        _, alive = psutil.wait_procs(children, timeout=10)
        survivors = [_describe(p) for p in alive if _still_running(p)]
        assert not survivors, f"still running after dexec-dev exited: {survivors}"
        busy = [
            port
            for port in (stack.api_port, stack.notifier_port, stack.nats_port, stack.pg_port)
            if not port_is_free(port)
        ]
        assert not busy, f"ports still in use after dexec-dev exited: {busy}"

        stack.wait_output_closed()
        ready_lines = [line for line in stack.stdout if line.startswith(READY_PREFIX)]
        assert len(ready_lines) == 1, stack.stdout
        # Graceful: no part of the stack had to be killed after the launcher's stop timeout.
        forced = [
            line
            for line in stack.stdout
            if "did not stop within" in line or "error while stopping" in line
        ]
        if forced:
            stack.fail(f"dexec-dev did not stop everything gracefully: {forced}")


def _nice_values(proc: psutil.Process) -> set[int]:
    """The nice value of each of the process's threads (Linux keeps one per thread)."""
    return {psutil.Process(thread.id).nice() for thread in proc.threads()}


def _still_running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())}"
    except psutil.Error:
        return str(proc.pid)
