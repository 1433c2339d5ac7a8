"""The report: one JSON document, and the same figures as a text table."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dexec_tools.loadgen.config import RunConfig
from dexec_tools.loadgen.samples import ProcessCpu, WorkerResult
from dexec_tools.loadgen.stats import STAGE_NAMES, RunStats, Summary

STAGE_LABELS = {
    "pending_to_routing": "pending → routing",
    "routing_to_routed": "routing → routed",
    "routed_to_building": "routed → building",
    "building_to_submitted": "building → submitted",
    "submitted_to_confirmed": "submitted → confirmed",
    "pending_to_terminal": "pending → terminal (end to end)",
}


def _summary(summary: Summary | None) -> dict[str, float | int] | None:
    return summary.as_json() if summary is not None else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None


@dataclass(frozen=True)
class ServiceFigures:
    """What was measured of the engine's own processes."""

    rss_peak_mib: dict[str, float]
    cpu_percent: dict[str, float]  # of one core, over the run
    note: str  # which processes, found how
    # CPU seconds until the engine went idle after the run, and how long after it that was.
    cpu_seconds_to_settle: dict[str, float] = field(default_factory=dict)
    settle_seconds: float | None = None


def engine_cpu_ms_per_order(cpu_seconds: dict[str, float], completed: int) -> float | None:
    """The engine's CPU (every watched process) per completed order, in ms."""
    if not cpu_seconds or not completed:
        return None
    return round(sum(cpu_seconds.values()) / completed * 1000, 2)


def build_report(
    config: RunConfig,
    stats: RunStats,
    workers: list[WorkerResult],
    parent_cpu: ProcessCpu,
    services: ServiceFigures,
) -> dict[str, Any]:
    error_frames: Counter[str] = Counter()
    closes: Counter[int] = Counter()
    connect_failures: Counter[str] = Counter()
    for worker in workers:
        error_frames.update(worker.error_frames)
        closes.update(worker.close_codes)
        connect_failures.update(worker.connect_failures)
    processes = [parent_cpu, *(w.cpu for w in workers)]
    cpu_seconds = sum(p.cpu_seconds for p in processes)
    wall = parent_cpu.wall_seconds
    cores = os.cpu_count() or 1
    return {
        "params": {**config.as_json(), "cpu_count": cores},
        "orders": {
            "requested": stats.requested,
            "submitted": stats.submitted,
            "accepted": stats.accepted,
            "replayed": stats.replayed,
            "retries": stats.retries,
            "rejected": dict(stats.rejected),
            "completed": stats.completed,
            "confirmed": stats.confirmed,
            "failed": dict(stats.failed),
            "stuck": stats.stuck,
            "lost": stats.lost,
            "peak_in_flight": stats.peak_in_flight,
            "not_found": stats.not_found,
            "shared_order_ids": stats.shared_order_ids,
        },
        "events": {
            "received": stats.events,
            "duplicated": stats.duplicated,
            "out_of_order": stats.out_of_order,
            "after_end": stats.after_end,
            "error_frames": dict(error_frames),
            "abnormal_closes": {str(code): n for code, n in sorted(closes.items())},
            "connect_failures": dict(connect_failures),
            "reconnects": sum(w.reconnects for w in workers),
            "sockets_opened": sum(w.sockets_opened for w in workers),
        },
        "throughput": {
            "accept_per_second": _round(stats.accept_per_second),
            "accept_window_seconds": _round(stats.accept_window, 3),
            "completion_per_second": _round(stats.completion_per_second),
            "completion_window_seconds": _round(stats.completion_window, 3),
        },
        "latency_ms": {
            "post": _summary(stats.post_ms),
            "post_from_schedule": _summary(stats.post_from_schedule_ms),
            "stages": {name: _summary(stats.stages_ms.get(name)) for name in STAGE_NAMES},
            "delivery": _summary(stats.delivery_ms),
        },
        "rss_peak_mib": services.rss_peak_mib,
        "services_cpu_percent_of_one_core": services.cpu_percent,
        "services_cpu_seconds_to_settle": services.cpu_seconds_to_settle,
        "settle_seconds_after_run": services.settle_seconds,
        "cpu_ms_per_order_to_settle": engine_cpu_ms_per_order(
            services.cpu_seconds_to_settle, stats.completed
        ),
        "services_note": services.note,
        "generator": {
            "cpu_seconds": round(cpu_seconds, 2),
            "wall_seconds": round(wall, 3),
            "cpu_percent_of_one_core": _round(100 * cpu_seconds / wall if wall else None),
            "cpu_percent_of_machine": _round(100 * cpu_seconds / wall / cores if wall else None),
            "processes": [
                {
                    "name": p.name,
                    "cpu_seconds": round(p.cpu_seconds, 2),
                    "cpu_percent_of_one_core": _round(
                        100 * p.cpu_seconds / p.wall_seconds if p.wall_seconds else None
                    ),
                }
                for p in processes
            ],
        },
    }


def _settled(report: dict[str, Any]) -> str:
    if report["cpu_ms_per_order_to_settle"] is None:
        return "not measured (no services sampled, --settle-timeout 0, or never idle)"
    return (
        f"{report['cpu_ms_per_order_to_settle']:.2f} ms per order, the engine idle "
        f"{report['settle_seconds_after_run']:.0f} s after the last event"
    )


def exit_status(report: dict[str, Any]) -> int:
    """0 if every order was accepted as an order of its own and seen to its end exactly once,
    in order, and nothing after it; else 1."""
    orders, events = report["orders"], report["events"]
    clean = (
        orders["accepted"] == orders["requested"]
        and orders["completed"] == orders["accepted"]
        and events["duplicated"] == 0
        and events["out_of_order"] == 0
        # Reports written before these were counted lack them.
        and events.get("after_end", 0) == 0
        and orders.get("shared_order_ids", 0) == 0
    )
    return 0 if clean else 1


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items())) or "none"


def _number(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.1f}{unit}"


def render_text(report: dict[str, Any]) -> str:
    params, orders, events = report["params"], report["orders"], report["events"]
    throughput, latency, generator = report["throughput"], report["latency_ms"], report["generator"]
    rate = f"{params['rate']:g}/s" if params["rate"] else "unpaced"
    lines = [
        f"dexec-load: {params['orders']} orders, rate {rate}, concurrency "
        f"{params['concurrency']}, {params['workers']} workers, {params['sockets']} sockets",
        f"  api {params['api_url']}  ws {params['ws_url']}  {params['token_in']}→"
        f"{params['token_out']} {params['amount']}",
        "",
        f"orders      submitted {orders['submitted']}  accepted {orders['accepted']} "
        f"(replayed {orders['replayed']})  retries {orders['retries']}  "
        f"rejected: {_counts(orders['rejected'])}",
        f"            completed {orders['completed']}  confirmed {orders['confirmed']}  "
        f"failed: {_counts(orders['failed'])}",
        f"            lost {orders['lost']}  stuck {orders['stuck']}  "
        f"unknown to the notifier {orders['not_found']}  "
        f"shared ids {orders.get('shared_order_ids', 0)}  "
        f"peak in flight {orders['peak_in_flight']}",
        f"events      received {events['received']}  duplicated {events['duplicated']}  "
        f"out of order {events['out_of_order']}  after the end {events.get('after_end', 0)}  "
        f"reconnects {events['reconnects']}  "
        f"sockets {events['sockets_opened']}",
        f"            error frames: {_counts(events['error_frames'])}  "
        f"abnormal closes: {_counts(events['abnormal_closes'])}  "
        f"connect failures: {_counts(events['connect_failures'])}",
        f"throughput  accept {_number(throughput['accept_per_second'], ' orders/s')} over "
        f"{_number(throughput['accept_window_seconds'], ' s')}   completion "
        f"{_number(throughput['completion_per_second'], ' orders/s')} over "
        f"{_number(throughput['completion_window_seconds'], ' s')}",
        "",
        f"{'latency (ms)':<34}{'count':>8}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}",
    ]
    rows = [
        ("POST /api/orders/execute", latency["post"]),
        # Reports written before it was measured lack it.
        ("POST, from its scheduled time", latency.get("post_from_schedule")),
        *((STAGE_LABELS[name], latency["stages"][name]) for name in STAGE_NAMES),
        ("event → client (delivery)", latency["delivery"]),
    ]
    for label, summary in rows:
        if summary is None:
            lines.append(f"{label:<34}{0:>8}{'-':>10}{'-':>10}{'-':>10}{'-':>10}")
        else:
            lines.append(
                f"{label:<34}{summary['count']:>8}{summary['p50']:>10.1f}{summary['p90']:>10.1f}"
                f"{summary['p99']:>10.1f}{summary['max']:>10.1f}"
            )
    rss = "  ".join(f"{name} {mib:.1f}" for name, mib in report["rss_peak_mib"].items())
    cpu = "  ".join(
        f"{name} {percent:.0f}%"
        for name, percent in report["services_cpu_percent_of_one_core"].items()
    )
    per_process = ", ".join(
        f"{p['name']} {_number(p['cpu_percent_of_one_core'], '%')}" for p in generator["processes"]
    )
    lines += [
        "",
        f"services         {report['services_note']}",
        f"peak RSS (MiB)   {rss or 'not sampled'}",
        f"CPU (% of 1 core) {cpu or 'not sampled'}",
        f"CPU to settle    {_settled(report)}",
        f"generator CPU    {generator['cpu_seconds']:.2f} s over {generator['wall_seconds']:.2f} s"
        f" = {_number(generator['cpu_percent_of_one_core'], '%')} of one core, "
        f"{_number(generator['cpu_percent_of_machine'], '%')} of {params['cpu_count']} cores "
        f"({per_process})",
    ]
    return "\n".join(lines)
