"""The engine as separate processes around local NATS and Postgres, for crash tests.

Unlike the in-process stack, every service here is its own OS process (started exactly as
`make up` starts them), so it can be killed with SIGKILL at any moment and started again.
NATS and Postgres are local servers that can be restarted in place with their data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dexec.db.migrate import upgrade
from dexec_tools.devstack import Service
from dexec_tools.servers import NatsServer, PostgresServer, free_port

WORKERS = ("router", "executor", "notifier")


@dataclass
class ProcessStack:
    data_dir: Path
    nats: NatsServer
    postgres: PostgresServer
    settings: dict[str, str]
    api_port: int = field(default_factory=free_port)
    notifier_port: int = field(default_factory=free_port)
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.notifier_port}"

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DEXEC_")}
        return {
            **inherited,
            "DEXEC_NATS_URL": self.nats.url,
            "DEXEC_DATABASE_URL": self.postgres.url(),
            "DEXEC_API_PORT": str(self.api_port),
            "DEXEC_NOTIFIER_PORT": str(self.notifier_port),
            "DEXEC_PUBLIC_WS_URL": self.ws_url,
            "DEXEC_ROUTER_METRICS_PORT": "0",
            "DEXEC_EXECUTOR_METRICS_PORT": "0",
            **{f"DEXEC_{k.upper()}": v for k, v in self.settings.items()},
        }

    def start(self) -> None:
        self.nats.start()
        self.postgres.start()
        upgrade(self.postgres.url())
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name in ("api", *WORKERS):
            self.services[name] = Service(name, self.env(), logs, echo=False)
            self.services[name].start()
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for url in (self.api_url, self.ws_url.replace("ws://", "http://")):
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready:\n{self.tails()}")
                time.sleep(0.1)

    def crash(self, name: str) -> None:
        self.services[name].kill()

    def revive(self, name: str) -> None:
        self.services[name].start()

    def tails(self) -> str:
        return "\n".join(f"--- {n}\n{s.tail()}" for n, s in self.services.items())

    def stop(self) -> None:
        """Stop every part, even when stopping one fails; then raise the first failure."""
        parts = [*reversed(list(self.services.values())), self.postgres, self.nats]
        failures: list[Exception] = []
        for part in parts:
            try:
                part.stop()
            except Exception as exc:  # the others must still stop
                failures.append(exc)
        if failures:
            raise failures[0]


def process_stack(settings: dict[str, str]) -> ProcessStack:
    # Not pytest's tmp_path: Postgres runs as an unprivileged user when we are root, and
    # pytest's temporary folders are private to root.
    data_dir = Path(tempfile.mkdtemp(prefix="dexec-chaos-"))
    return ProcessStack(
        data_dir,
        NatsServer(data_dir / "nats"),
        PostgresServer(data_dir / "postgres"),
        settings,
    )


def remove(stack: ProcessStack) -> None:
    shutil.rmtree(stack.data_dir, ignore_errors=True)
