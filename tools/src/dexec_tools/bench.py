"""`make bench`: the standard benchmark, run on a fresh local stack per latency mode.

For each mode it starts the engine as `make up` does (a fresh data folder, free ports, rate
limits off so the limiter is not what is measured), its services in an environment that holds
only what their images install (`dexec_tools.engine_env`), runs the load generator
against it, stops it, and keeps the JSON report. A summary of both modes is printed at the end
and written beside the reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dexec_tools.engine_env import engine_python, supports_engine_python
from dexec_tools.servers import free_port

MODES = {"zero": "0", "realistic": "500"}  # latency mode -> default target rate (orders/s)


class StackDidNotStart(RuntimeError):
    pass


def stack_command(
    data_dir: Path,
    ports: list[int],
    replicas: int,
    tree: Path | None = None,
    cpu_priority: str | None = None,
    services_python: Path | None = None,
) -> list[str]:
    """`dexec-dev` on free ports: this checkout's, or that of the checkout `tree` (with its
    own environment, `tree/.venv`), so one load generator can measure several revisions; its
    services on `services_python` if given (else on dexec-dev's interpreter)."""
    python = str(tree / ".venv" / "bin" / "python") if tree is not None else sys.executable
    flags = ["--api-port", "--notifier-port", "--nats-port", "--pg-port"]
    flags += ["--router-metrics-port", "--executor-metrics-port"]
    command = [python, "-m", "dexec_tools.devstack", "--data-dir", str(data_dir)]
    command += [arg for flag, port in zip(flags, ports, strict=True) for arg in (flag, str(port))]
    if replicas > 1:  # only then: revisions from before `--replicas` start as they did
        command += ["--replicas", str(replicas)]
    if cpu_priority is not None:  # likewise
        command += ["--cpu-priority", cpu_priority]
    if services_python is not None:
        command += ["--engine-python", str(services_python)]
    return [*command, "--quiet"]


def start_stack(
    mode: str,
    data_dir: Path,
    replicas: int = 1,
    tree: Path | None = None,
    cpu_priority: str | None = None,
    services_python: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEXEC_")},
        "DEXEC_LATENCY_MODE": mode,
        "DEXEC_RATE_LIMIT_PER_SECOND": "0",
        "DEXEC_LOG_LEVEL": "WARNING",
    }
    if tree is not None:
        env.pop("VIRTUAL_ENV", None)  # the stack runs in the other checkout's environment
    ports = [free_port() for _ in range(6)]
    stack = subprocess.Popen(
        stack_command(data_dir, ports, replicas, tree, cpu_priority, services_python),
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert stack.stdout is not None
    deadline = time.monotonic() + 120
    for line in stack.stdout:
        if line.startswith("DEXEC READY"):
            api = line.split()[2].removeprefix("api=")
            return stack, api
        if time.monotonic() > deadline:
            break
    stack.kill()
    stack.wait()
    raise StackDidNotStart(f"the {mode} stack did not start")


def stop_stack(stack: subprocess.Popen[str]) -> None:
    stack.send_signal(signal.SIGTERM)
    try:
        stack.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(stack.pid, signal.SIGKILL)
        stack.wait()


def run_mode(mode: str, args: argparse.Namespace, out: Path) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"dexec-bench-{mode}-"))
    report = out / f"{mode}.json"
    report.unlink(missing_ok=True)  # an earlier run's: a run that writes none has no figures
    try:
        try:
            stack, api = start_stack(
                mode,
                data_dir,
                args.replicas,
                args.stack_tree,
                args.cpu_priority,
                args.services_python,
            )
        except StackDidNotStart as exc:
            # The data folder goes below; its logs say why, so they are kept with the reports.
            logs, kept = data_dir / "logs", out / f"{mode}-stack-logs"
            if not logs.is_dir():
                raise
            shutil.copytree(logs, kept, dirs_exist_ok=True)
            raise StackDidNotStart(f"{exc}; its logs are in {kept}") from None
        try:
            rate = args.rate if args.rate is not None else MODES[mode]
            load = [sys.executable, "-m", "dexec_tools.loadgen", "--api", api]
            load += ["--orders", str(args.orders), "--rate", str(rate)]
            load += ["--workers", str(args.workers), "--json", str(report)]
            print(f"\n=== {mode} latency: {args.orders} orders at rate {rate} ===", flush=True)
            subprocess.run(load, check=False)
        finally:
            stop_stack(stack)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return json.loads(report.read_text()) if report.exists() else {}


def services_python(engine_env: str, tree: Path | None) -> Path | None:
    """The interpreter the services run on, None for dexec-dev's own."""
    checkout = tree if tree is not None else Path(__file__).resolve().parents[3]
    if engine_env == "dev":
        return None
    if not supports_engine_python(checkout):
        print(f"dexec-bench: {checkout}'s dexec-dev has no --engine-python; its services run in")
        print("its dev environment (compare it with others measured with --engine-env dev)")
        return None
    return engine_python(checkout)


def main() -> None:
    parser = argparse.ArgumentParser(prog="dexec-bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=None, help="default: per mode (0 = max)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default="zero,realistic")
    parser.add_argument("--replicas", type=int, default=1, help="router and executor processes")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--cpu-priority",
        default=None,
        help="passed to dexec-dev: which parts yield when the cores are full (e.g. latency)",
    )
    parser.add_argument(
        "--stack-tree",
        type=Path,
        default=None,
        help="run the engine from this checkout (with its synced .venv) instead of this one; "
        "the load generator stays this checkout's",
    )
    parser.add_argument(
        "--engine-env",
        choices=("deployed", "dev"),
        default="deployed",
        help="deployed (default): the services run in an environment holding only what their "
        "images install (`.venv-engine`, synced first); dev: in the workspace's .venv, with the "
        "tools' and tests' packages too",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.services_python = services_python(args.engine_env, args.stack_tree)
    reports = {mode: run_mode(mode, args, args.out) for mode in args.modes.split(",")}
    (args.out / "summary.json").write_text(json.dumps(reports, indent=2))
    print(f"\nreports in {args.out}/: " + ", ".join(f"{m}.json" for m in reports))


if __name__ == "__main__":
    main()
