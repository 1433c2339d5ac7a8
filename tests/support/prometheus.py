"""A real Prometheus server (Debian's `prometheus` binary) scraping local targets every second.

Run as a child process with its own config and TSDB in a temporary folder and a free port on
127.0.0.1 (never the Debian service). Queries go through its HTTP API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from dexec_tools.servers import free_port

BINARY = os.environ.get("DEXEC_PROMETHEUS") or shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_INTERVAL = "1s"


@dataclass
class Prometheus:
    data_dir: Path
    # job name -> "host:port" of a /metrics endpoint
    targets: dict[str, str]
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if not Path(BINARY).exists():
            raise FileNotFoundError(
                f"{BINARY} not found: install Debian's prometheus (bash tools/system-packages.sh)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        log = (self.data_dir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def wait_scraping(self, timeout: float = 30.0) -> None:
        """Until every target was scraped once: Prometheus applies new targets only every few
        seconds after it starts, and traffic before that would be missed by every `rate`."""
        deadline = time.monotonic() + timeout
        while (up := self.targets_up()) != dict.fromkeys(self.targets, True):
            if time.monotonic() > deadline:
                raise TimeoutError(f"targets not scraped: {up}\n{self.log_tail()}")
            time.sleep(0.2)

    def _config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in self.targets.items()
            ],
        }

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query now."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('error', body)}")
        return body["data"]["result"]

    def metric_names(self) -> list[str]:
        response = httpx.get(f"{self.url}/api/v1/label/__name__/values", timeout=10)
        return response.json()["data"]

    def targets_up(self) -> dict[str, bool]:
        return {r["metric"]["job"]: r["value"][1] == "1" for r in self.query("up")}

    def log_tail(self, lines: int = 20) -> str:
        path = self.data_dir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
