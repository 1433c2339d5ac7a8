"""`make bench-compare`: before and after, measured in the same run on the same machine.

This machine is shared and noisy, so two benchmark runs an hour apart do not compare. This
checks out each git revision into its own worktree (with its own environment, `uv sync`),
then runs the standard benchmark (`dexec_tools.bench`, one latency mode) for each revision in
turn, round after round, so slow spells hit every revision alike. The engine runs from the
revision's worktree; the load generator is this checkout's for every revision, so all are
measured with the same instrument (and an older revision gets the newer figures too). It
reports each figure's median over the rounds and its ratio to the first revision (the
baseline).

A revision may carry options after commas: `REV,replicas=N` runs N routers and N executors
(the scaling run compares `HEAD` with `HEAD,replicas=2`); `REV,rate=R` and `REV,orders=N`
override `--rate` and `--orders` for that column, so `HEAD,rate=50 HEAD,rate=150` measures one
revision at several offered rates, their rounds interleaved like any comparison; and
`REV,python=P` runs it on another interpreter (any `uv --python` request: a version or a path),
so `HEAD HEAD,python=3.13` compares interpreters; `REV,priority=PROFILE` starts its engine
with `dexec-dev --cpu-priority PROFILE` (`HEAD HEAD,priority=latency`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dexec_tools.cpu_priority import PROFILES
from dexec_tools.devstack import SERVICES
from dexec_tools.engine_env import supports_engine_python, uv

Figure = Callable[[dict[str, Any]], float | None]

# name -> (how to read it from a loadgen report, whether higher is better)
FIGURES: dict[str, tuple[Figure, bool]] = {
    "completed orders/s": (lambda r: r["throughput"]["completion_per_second"], True),
    "accepted orders/s": (lambda r: r["throughput"]["accept_per_second"], True),
    "POST p99 ms": (lambda r: r["latency_ms"]["post"]["p99"], False),
    "POST from schedule p99 ms": (
        lambda r: (r["latency_ms"].get("post_from_schedule") or {}).get("p99"),
        False,
    ),
    "end to end p50 ms": (lambda r: r["latency_ms"]["stages"]["pending_to_terminal"]["p50"], False),
    "routed→building p50 ms": (
        lambda r: r["latency_ms"]["stages"]["routed_to_building"]["p50"],
        False,
    ),
    "delivery p50 ms": (lambda r: r["latency_ms"]["delivery"]["p50"], False),
    "delivery p99 ms": (lambda r: r["latency_ms"]["delivery"]["p99"], False),
    "CPU ms per order (services, NATS, Postgres)": (lambda r: cpu_ms_per_order(r), False),
    # Also the work still under way when the last event reached the client (see loadgen.rss).
    "CPU ms per order, to idle": (lambda r: r.get("cpu_ms_per_order_to_settle"), False),
    "idle s after the last event": (lambda r: r.get("settle_seconds_after_run"), False),
    "peak orders in flight": (lambda r: r["orders"].get("peak_in_flight"), True),
    "largest service RSS MiB": (lambda r: max_service_rss(r["rss_peak_mib"]), False),
    "lost+stuck+duplicated": (
        lambda r: r["orders"]["lost"] + r["orders"]["stuck"] + r["events"]["duplicated"],
        False,
    ),
}


def max_service_rss(peaks: dict[str, float]) -> float | None:
    """The largest peak RSS of a dexec service process (replicas included; not NATS, Postgres)."""
    ours = [mib for name, mib in peaks.items() if name.split("-")[0] in SERVICES]
    return max(ours, default=None)


def cpu_ms_per_order(report: dict[str, Any]) -> float | None:
    """CPU the whole engine spent per completed order, over the completion window."""
    window = report["throughput"]["completion_window_seconds"]
    completed = report["orders"]["completed"]
    if not window or not completed:
        return None
    percent = sum(report["services_cpu_percent_of_one_core"].values())
    return percent / 100 * window / completed * 1000


@dataclass(frozen=True)
class Variant:
    """One column of the table: a revision and what differs in how it is run."""

    rev: str
    replicas: int = 1
    rate: str | None = None  # None: the run's --rate
    orders: int | None = None  # None: the run's --orders
    python: str | None = None  # None: the interpreter `uv` picks for the project
    priority: str | None = None  # None: dexec-dev's default CPU priorities


def parse_variant(spec: str) -> Variant:
    """`REV[,replicas=N][,rate=R][,orders=N][,python=P][,priority=PROFILE]` -> its Variant."""
    rev, *options = spec.split(",")
    fields: dict[str, Any] = {}
    for option in options:
        name, _, value = option.partition("=")
        if name == "replicas" and value.isdigit():
            fields["replicas"] = int(value)
        elif name == "orders" and value.isdigit():
            fields["orders"] = int(value)
        elif name == "rate" and value.replace(".", "", 1).isdigit():
            fields["rate"] = value
        elif name == "python" and value:
            fields["python"] = value
        elif name == "priority" and value in PROFILES:
            fields["priority"] = value
        else:
            raise ValueError(
                f"{spec!r}: {option!r} is not replicas=N, rate=R, orders=N, python=P "
                f"or priority={'|'.join(PROFILES)}"
            )
    return Variant(rev, **fields)


def column_labels(specs: list[str]) -> list[str]:
    """A column per spec as given, a repeated one numbered (`HEAD HEAD` is an A/A run: how far
    apart the same engine measures against itself, which is this machine's noise)."""
    seen: dict[str, int] = {}
    labels = []
    for spec in specs:
        seen[spec] = seen.get(spec, 0) + 1
        labels.append(spec if seen[spec] == 1 else f"{spec} #{seen[spec]}")
    return labels


def worktree_env() -> dict[str, str]:
    """This process's environment minus its virtualenv: each worktree uses its own."""
    return {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}


def commit_of(repo: Path, rev: str) -> str:
    """The commit `rev` names now (`HEAD` moves; a commit id does not)."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def tree_name(commit: str, python: str | None) -> str:
    """A worktree's folder: its commit, and the interpreter if one was asked for."""
    if python is None:
        return commit[:12]
    return f"{commit[:12]}-py-" + "".join(c if c.isalnum() or c == "." else "_" for c in python)


def prepare(repo: Path, rev: str, root: Path, python: str | None = None) -> Path:
    """A worktree of `rev` with its own synced environment, named by its commit (and
    interpreter), so that a worktree left by an earlier run is reused only for the very same
    commit on the same interpreter."""
    tree = root / tree_name(commit_of(repo, rev), python)
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), rev], check=True
        )
    sync = [uv(), "sync", "--frozen", "-q", *([] if python is None else ["--python", python])]
    subprocess.run(sync, cwd=tree, env=worktree_env(), check=True)
    return tree


def run_once(
    tree: Path,
    mode: str,
    orders: int,
    rate: str | None,
    out: Path,
    replicas: int,
    priority: str | None = None,
    engine_env: str = "deployed",
) -> dict[str, Any]:
    """One benchmark: the engine from `tree`, measured by this checkout's load generator."""
    command = [sys.executable, "-m", "dexec_tools.bench", "--modes", mode]
    command += ["--engine-env", engine_env]
    command += ["--orders", str(orders), "--out", str(out)]
    command += ["--replicas", str(replicas), "--stack-tree", str(tree)]
    if rate is not None:  # else the mode's standard rate (`dexec_tools.bench.MODES`)
        command += ["--rate", rate]
    if priority is not None:
        command += ["--cpu-priority", priority]
    report = out / f"{mode}.json"
    report.unlink(missing_ok=True)  # a failed round must not read an earlier run's report
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    return json.loads(report.read_text()) if report.exists() else {}


def figure(report: dict[str, Any], read: Figure) -> float | None:
    try:
        value = read(report)
    except (KeyError, TypeError):
        return None
    return float(value) if value is not None else None


def summarise(revs: list[str], reports: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| figure (median) | " + " | ".join(revs) + " |"]
    lines.append("|---" * (len(revs) + 1) + "|")
    for name, (read, _) in FIGURES.items():
        medians, counts = [], []
        for rev in revs:
            values = [v for r in reports[rev] if (v := figure(r, read)) is not None]
            medians.append(statistics.median(values) if values else None)
            counts.append((len(values), len(reports[rev])))
        base = medians[0]
        cells = []
        for i, (median, (measured, rounds)) in enumerate(zip(medians, counts, strict=True)):
            if median is None:
                cell = "n/a"
            elif i == 0 or not base:
                cell = _number(median)
            else:
                cell = f"{_number(median)} (x{median / base:.2f})"
            if median is not None and measured < rounds:
                # A round that failed, or never measured this figure (an engine never idle).
                cell += f" [{measured} of {rounds} rounds]"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float) -> str:
    """Whole numbers and large figures without decimals, small fractional ones with one."""
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="dexec-bench-compare", description=__doc__)
    parser.add_argument("revs", nargs="+", help="git revisions; the first is the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--mode", default="zero", choices=["zero", "realistic"])
    parser.add_argument(
        "--rate",
        default=None,
        help="orders/s for the load generator (0 = max); default: the mode's standard rate, "
        "as `make bench` (zero latency unpaced, realistic 500/s)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/compare"))
    parser.add_argument("--worktrees", type=Path, default=Path("/tmp/dexec-bench-trees"))
    parser.add_argument(
        "--engine-env",
        choices=("deployed", "dev"),
        default="deployed",
        help="where the services run (dexec-bench --engine-env); if a revision's dexec-dev "
        "cannot take another interpreter, every revision runs in its dev environment",
    )
    args = parser.parse_args()

    repo = Path.cwd()
    labels = column_labels(args.revs)
    try:
        variants = {
            label: parse_variant(spec) for label, spec in zip(labels, args.revs, strict=True)
        }
    except ValueError as exc:
        parser.error(str(exc))
    builds = {(v.rev, v.python) for v in variants.values()}
    trees = {(rev, py): prepare(repo, rev, args.worktrees, py) for rev, py in builds}
    engine_env = args.engine_env
    if engine_env == "deployed" and not all(map(supports_engine_python, trees.values())):
        # One environment for all, or ~11 MiB per service would show as a revision's effect.
        print("dexec-bench-compare: a revision's dexec-dev has no --engine-python: every")
        print("revision's services run in its dev environment (--engine-env dev)")
        engine_env = "dev"
    reports: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for round_no in range(1, args.rounds + 1):
        for label, v in variants.items():
            folder = label.replace("/", "_").replace(" #", "-")
            out = (args.out / folder / str(round_no)).resolve()
            out.mkdir(parents=True, exist_ok=True)
            orders, rate = v.orders or args.orders, v.rate or args.rate
            tree = trees[(v.rev, v.python)]
            report = run_once(
                tree, args.mode, orders, rate, out, v.replicas, v.priority, engine_env
            )
            reports[label].append(report)
            completed = figure(report, FIGURES["completed orders/s"][0])
            print(f"round {round_no} {label}: {completed} completed orders/s", flush=True)
    table = summarise(labels, reports)
    (args.out / "summary.md").write_text(table + "\n")
    (args.out / "reports.json").write_text(json.dumps(reports, indent=2))
    print(table)


if __name__ == "__main__":
    main()
