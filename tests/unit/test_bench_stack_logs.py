"""`make bench` keeps the logs of a stack that did not start, with the reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from dexec_tools import bench, engine_env


def test_a_stack_that_does_not_start_leaves_its_logs_with_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dirs: list[Path] = []

    def failing_start(
        mode: str,
        data_dir: Path,
        replicas: int = 1,
        tree: Path | None = None,
        cpu_priority: str | None = None,
        services_python: Path | None = None,
    ) -> None:
        data_dirs.append(data_dir)
        (data_dir / "logs").mkdir()
        (data_dir / "logs" / "api.log").write_text("api: address already in use\n")
        raise bench.StackDidNotStart(f"the {mode} stack did not start")

    monkeypatch.setattr(bench, "start_stack", failing_start)
    args = argparse.Namespace(replicas=1, stack_tree=None, cpu_priority=None, services_python=None)
    with pytest.raises(bench.StackDidNotStart, match="zero-stack-logs"):
        bench.run_mode("zero", args, tmp_path)
    kept = tmp_path / "zero-stack-logs" / "api.log"
    assert kept.read_text() == "api: address already in use\n"
    assert not data_dirs[0].exists()  # the data folder itself is still removed


def test_the_stack_can_come_from_another_checkout_while_the_generator_stays() -> None:
    ports = [1001, 1002, 1003, 1004, 1005, 1006]
    ours = bench.stack_command(Path("/data"), ports, 1)
    theirs = bench.stack_command(Path("/data"), ports, 2, Path("/trees/abc"))
    assert ours[:3] == [sys.executable, "-m", "dexec_tools.devstack"]
    assert theirs[:3] == ["/trees/abc/.venv/bin/python", "-m", "dexec_tools.devstack"]
    assert ours[3:] == [
        "--data-dir", "/data",
        "--api-port", "1001", "--notifier-port", "1002", "--nats-port", "1003",
        "--pg-port", "1004", "--router-metrics-port", "1005", "--executor-metrics-port", "1006",
        "--quiet",
    ]  # fmt: skip
    # One replica is the default everywhere, so it is not asked for: revisions from before
    # `--replicas` existed start as they did.
    assert "--replicas" not in ours
    assert theirs[-3:] == ["--replicas", "2", "--quiet"]


def test_cpu_priorities_reach_the_stack_only_when_asked_for() -> None:
    ports = [1001, 1002, 1003, 1004, 1005, 1006]
    assert "--cpu-priority" not in bench.stack_command(Path("/data"), ports, 1)
    asked = bench.stack_command(Path("/data"), ports, 1, cpu_priority="latency")
    assert asked[-3:] == ["--cpu-priority", "latency", "--quiet"]


def test_the_services_run_on_the_interpreter_asked_for_and_older_stacks_are_not_asked() -> None:
    ports = [1001, 1002, 1003, 1004, 1005, 1006]
    assert "--engine-python" not in bench.stack_command(Path("/data"), ports, 1)
    engine = Path("/repo/.venv-engine/bin/python")
    asked = bench.stack_command(Path("/data"), ports, 1, services_python=engine)
    assert asked[-3:] == ["--engine-python", str(engine), "--quiet"]


def test_the_engine_environment_holds_the_four_services_and_no_dev_packages() -> None:
    command = engine_env.sync_command(Path("/trees/abc/.venv/bin/python"))
    assert Path(command[0]).name == "uv" and command[1:4] == ["sync", "--frozen", "--no-dev"]
    assert command[command.index("--python") + 1] == "/trees/abc/.venv/bin/python"
    packages = {command[i + 1] for i, arg in enumerate(command) if arg == "--package"}
    assert packages == {"dexec-api", "dexec-router", "dexec-executor", "dexec-notifier"}


def test_a_checkout_whose_dexec_dev_predates_engine_python_is_not_given_it(
    tmp_path: Path,
) -> None:
    devstack = tmp_path / "tools" / "src" / "dexec_tools" / "devstack.py"
    devstack.parent.mkdir(parents=True)
    devstack.write_text('parser.add_argument("--replicas")\n')
    assert not engine_env.supports_engine_python(tmp_path)
    assert engine_env.supports_engine_python(Path(bench.__file__).resolve().parents[3])


def test_a_run_whose_load_generator_wrote_no_report_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the report an earlier run left in the output folder."""
    (tmp_path / "zero.json").write_text('{"stale": true}')
    monkeypatch.setattr(bench, "start_stack", lambda *_: (None, "http://127.0.0.1:1"))
    monkeypatch.setattr(bench, "stop_stack", lambda _: None)
    monkeypatch.setattr(bench.subprocess, "run", lambda *_, **__: None)  # wrote nothing
    args = argparse.Namespace(
        replicas=1,
        stack_tree=None,
        cpu_priority=None,
        services_python=None,
        rate=None,
        orders=3000,
        workers=2,
    )
    assert bench.run_mode("zero", args, tmp_path) == {}
