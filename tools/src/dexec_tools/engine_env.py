"""The environment the benchmarked services run in: what their images install, no more.

The workspace's `.venv` also holds the tools and the test suite. Their packages change what
the services cost: nats-py imports aiohttp whenever it is installed (for WebSocket
transports the engine does not use), which the load generator brings, and that alone adds
~11 MiB to every service's RSS. The images install each service with `uv sync --no-dev
--package dexec-<service>`; this syncs the four together into `.venv-engine` of a checkout,
from the same lock file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dexec_tools.devstack import SERVICES

ENGINE_VENV = ".venv-engine"


def uv() -> str:
    """The uv to run: `uv run` names itself in UV, and uv may not be on PATH (the Makefile
    falls back to `python3 -m uv`)."""
    return os.environ.get("UV", "uv")


def sync_command(python: Path | None = None) -> list[str]:
    """`uv sync` of the four services alone, on `python`'s interpreter if given."""
    packages = [arg for name in SERVICES for arg in ("--package", f"dexec-{name}")]
    interpreter = [] if python is None else ["--python", str(python)]
    return [uv(), "sync", "--frozen", "--no-dev", "-q", *interpreter, *packages]


def engine_python(checkout: Path) -> Path:
    """The interpreter of `checkout`'s services-only environment, synced now on the same
    Python as its `.venv` (`bench-compare` may have built that on another one)."""
    venv = checkout / ENGINE_VENV
    dev_python = checkout / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    command = sync_command(dev_python if dev_python.exists() else None)
    subprocess.run(command, cwd=checkout, env=env, check=True)
    return venv / "bin" / "python"


def supports_engine_python(checkout: Path) -> bool:
    """Whether `checkout`'s dexec-dev can start its services on another interpreter (older
    revisions, measured by `bench-compare`, cannot)."""
    devstack = checkout / "tools" / "src" / "dexec_tools" / "devstack.py"
    return devstack.is_file() and "--engine-python" in devstack.read_text()
