"""The before/after table: medians per revision and ratios to the baseline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dexec_tools import bench_compare
from dexec_tools.bench_compare import (
    Variant,
    commit_of,
    cpu_ms_per_order,
    max_service_rss,
    parse_variant,
    summarise,
    tree_name,
)


def report(completed: float, lost: int = 0) -> dict:
    return {
        "throughput": {"completion_per_second": completed, "accept_per_second": completed * 2},
        "orders": {"lost": lost, "stuck": 0},
        "events": {"duplicated": 0},
    }


def test_medians_and_ratios_against_the_first_revision() -> None:
    table = summarise(
        ["old", "new"],
        {
            "old": [report(100), report(120), report(90)],
            "new": [report(300), report(250, lost=1), report(400)],
        },
    )
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert rows["completed orders/s"] == "| completed orders/s | 100 | 300 (x3.00) |"
    assert rows["accepted orders/s"] == "| accepted orders/s | 200 | 600 (x3.00) |"
    # Figures a report lacks are shown as missing, not as zero.
    assert rows["POST p99 ms"] == "| POST p99 ms | n/a | n/a |"
    assert rows["lost+stuck+duplicated"] == "| lost+stuck+duplicated | 0 | 0 |"


def test_a_median_over_fewer_than_all_rounds_says_so() -> None:
    """A round that failed (no report) or lacks a figure must not pass for a full median."""
    table = summarise(["old", "new"], {"old": [report(100)] * 3, "new": [{}, report(300), {}]})
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert rows["completed orders/s"] == (
        "| completed orders/s | 100 | 300 (x3.00) [1 of 3 rounds] |"
    )


def test_a_round_whose_benchmark_wrote_no_report_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the report an earlier run left in the same folder; and with no rate of its own, a
    round runs at its mode's standard rate (no --rate)."""
    (tmp_path / "realistic.json").write_text('{"stale": true}')
    commands: list[list[str]] = []
    monkeypatch.setattr(bench_compare.subprocess, "run", lambda cmd, **_: commands.append(cmd))

    assert bench_compare.run_once(tmp_path, "realistic", 3000, None, tmp_path, 1) == {}
    assert "--rate" not in commands[0]
    bench_compare.run_once(tmp_path, "realistic", 3000, "250", tmp_path, 1)
    assert commands[1][commands[1].index("--rate") + 1] == "250"


def test_a_revision_may_ask_for_replicas_a_rate_orders_an_interpreter_and_priorities() -> None:
    assert parse_variant("HEAD") == Variant("HEAD")
    assert parse_variant("abc123,replicas=2") == Variant("abc123", replicas=2)
    assert parse_variant("HEAD,rate=150,orders=3000") == Variant("HEAD", rate="150", orders=3000)
    assert parse_variant("HEAD,rate=12.5") == Variant("HEAD", rate="12.5")
    assert parse_variant("HEAD,python=/opt/py/bin/python3.13") == Variant(
        "HEAD", python="/opt/py/bin/python3.13"
    )
    assert parse_variant("HEAD,priority=latency") == Variant("HEAD", priority="latency")
    bad_specs = ("HEAD,replicas=two", "HEAD,rate=-1", "HEAD,speed=9", "HEAD,rate=", "HEAD,python=")
    for bad in (*bad_specs, "HEAD,priority=fast"):
        with pytest.raises(ValueError, match="is not replicas=N, rate=R, orders=N, python=P or"):
            parse_variant(bad)


def test_each_interpreter_gets_a_worktree_of_its_own() -> None:
    commit = "0123456789abcdef"
    assert tree_name(commit, None) == "0123456789ab"
    assert tree_name(commit, "3.13") == "0123456789ab-py-3.13"
    assert tree_name(commit, "/opt/py/bin/python3.13") == "0123456789ab-py-_opt_py_bin_python3.13"


def test_the_largest_rss_is_of_a_service_replicas_included() -> None:
    peaks = {"nats": 300.0, "postgres": 400.0, "api": 90.0, "executor-2": 120.5, "notifier": 110}
    assert max_service_rss(peaks) == 120.5
    assert max_service_rss({"nats": 1.0}) is None


def test_cpu_per_order_is_the_engine_cpu_over_the_window_per_completed_order() -> None:
    run = {
        "throughput": {"completion_window_seconds": 10.0},
        "orders": {"completed": 1000},
        "services_cpu_percent_of_one_core": {"nats": 50.0, "api": 30.0, "notifier": 70.0},
    }
    assert cpu_ms_per_order(run) == 15.0  # 1.5 cores for 10 s = 15 s over 1,000 orders
    assert cpu_ms_per_order({**run, "orders": {"completed": 0}}) is None


def test_a_revision_is_resolved_to_its_commit_so_a_moved_head_gets_a_new_worktree(
    tmp_path: Path,
) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "one")
    first = commit_of(tmp_path, "HEAD")
    assert first == git("rev-parse", "HEAD")
    git("commit", "-q", "--allow-empty", "-m", "two")
    assert commit_of(tmp_path, "HEAD") != first
    assert commit_of(tmp_path, "HEAD~1") == first
    with pytest.raises(subprocess.CalledProcessError):
        commit_of(tmp_path, "no-such-revision")


def test_a_revision_given_twice_gets_a_column_each() -> None:
    labels = bench_compare.column_labels(["HEAD", "HEAD", "abc,replicas=2", "HEAD"])
    assert labels == ["HEAD", "HEAD #2", "abc,replicas=2", "HEAD #3"]
    reports = {
        "HEAD": [{"throughput": {"completion_per_second": 100.0}}],
        "HEAD #2": [{"throughput": {"completion_per_second": 90.0}}],
    }
    table = bench_compare.summarise(["HEAD", "HEAD #2"], reports)
    assert "| completed orders/s | 100 | 90 (x0.90) |" in table
