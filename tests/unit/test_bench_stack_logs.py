"""`make bench` keeps the logs of a stack that did not start, with the reports."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dexec_tools import bench


def test_a_stack_that_does_not_start_leaves_its_logs_with_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dirs: list[Path] = []

    def failing_start(mode: str, data_dir: Path, replicas: int = 1) -> None:
        data_dirs.append(data_dir)
        (data_dir / "logs").mkdir()
        (data_dir / "logs" / "api.log").write_text("api: address already in use\n")
        raise bench.StackDidNotStart(f"the {mode} stack did not start")

    monkeypatch.setattr(bench, "start_stack", failing_start)
    args = argparse.Namespace(replicas=1)
    with pytest.raises(bench.StackDidNotStart, match="zero-stack-logs"):
        bench.run_mode("zero", args, tmp_path)
    kept = tmp_path / "zero-stack-logs" / "api.log"
    assert kept.read_text() == "api: address already in use\n"
    assert not data_dirs[0].exists()  # the data folder itself is still removed
