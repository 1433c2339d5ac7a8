"""`dexec-load` run for real (its console script, worker processes and all) against the stack.

The stack serves from this test's event loop, so the generator runs as a subprocess awaited
without blocking that loop; the test then reads the JSON report it wrote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from dexec.auth import hash_api_key
from tests.support.stack import Stack
from tests.support.waiting import eventually

ORDERS = 200
RUN_TIMEOUT = 180.0
LOADGEN = Path(sys.executable).with_name("dexec-load")  # installed by the workspace's uv sync


async def run_loadgen(
    stack: Stack, report_path: Path, *args: str
) -> tuple[int, str, dict[str, Any]]:
    """Run dexec-load to its end; its exit code, its text report and its JSON report."""
    process = await asyncio.create_subprocess_exec(
        str(LOADGEN),
        "--api",
        stack.api_url,
        "--orders",
        str(ORDERS),
        "--workers",
        "2",
        "--rate",
        "0",
        "--timeout",
        "60",
        "--no-progress",
        "--json",
        str(report_path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, so a timeout can end all of it
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)  # the generator and its worker processes
        await process.wait()
        raise
    assert process.returncode is not None  # for the type checker: communicate() waited
    if process.returncode != 0:
        print(stdout.decode(), stderr.decode(), sep="\n", file=sys.stderr)
    report = await asyncio.to_thread(load_report, report_path)
    return process.returncode, stdout.decode(), report


def load_report(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def assert_ordered(summary: dict[str, Any] | None, count: int) -> None:
    assert summary is not None
    assert summary["count"] == count
    assert 0 <= summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]


def assert_every_order_seen_once(report: dict[str, Any]) -> None:
    orders, events = report["orders"], report["events"]
    assert orders["requested"] == orders["submitted"] == ORDERS
    assert orders["accepted"] == ORDERS and orders["rejected"] == {}
    assert orders["completed"] == ORDERS
    assert orders["confirmed"] + sum(orders["failed"].values()) == ORDERS
    assert orders["lost"] == orders["stuck"] == orders["not_found"] == 0
    assert orders["shared_order_ids"] == 0
    assert events["duplicated"] == events["out_of_order"] == 0
    assert events["error_frames"] == {}
    assert events["received"] >= 6 * orders["confirmed"]

    assert report["throughput"]["accept_per_second"] > 0
    assert report["throughput"]["completion_per_second"] > 0
    latency = report["latency_ms"]
    assert_ordered(latency["post"], ORDERS)
    assert_ordered(latency["delivery"], events["received"])
    assert_ordered(latency["stages"]["pending_to_routing"], ORDERS)
    assert_ordered(latency["stages"]["pending_to_terminal"], ORDERS)
    assert_ordered(latency["stages"]["submitted_to_confirmed"], orders["confirmed"])

    generator = report["generator"]
    assert [p["name"] for p in generator["processes"]] == ["parent", "worker-0", "worker-1"]
    assert generator["cpu_seconds"] > 0
    # The services run inside this test's process, which listens on the API's port.
    assert report["rss_peak_mib"]["stack (in-process)"] > 0
    assert report["services_cpu_percent_of_one_core"]["stack (in-process)"] > 0
    # After the run the stack went idle, and its CPU until then was counted.
    assert report["settle_seconds_after_run"] is not None
    assert report["services_cpu_seconds_to_settle"]["stack (in-process)"] > 0
    assert report["cpu_ms_per_order_to_settle"] > 0


def sent(metric: str) -> float:
    """A notifier counter, summed (the stack runs in this process)."""
    return REGISTRY.get_sample_value(metric) or 0.0


@pytest.mark.parametrize(
    ("sockets", "frames"),
    [("multiplexed", "batch"), ("multiplexed", "single"), ("per-order", "batch")],
)
async def test_every_order_is_accepted_and_followed_to_its_end_once(
    stack: Stack, tmp_path: Path, sockets: str, frames: str
) -> None:
    events_before = sent("dexec_ws_messages_sent_total")
    frames_before = sent("dexec_ws_frames_sent_total")

    code, text, report = await run_loadgen(
        stack, tmp_path / "report.json", "--sockets", sockets, "--frames", frames
    )

    assert code == 0
    assert_every_order_seen_once(report)
    assert report["params"]["sockets"] == sockets
    assert report["params"]["batched_frames"] == (frames == "batch")
    events_sent = sent("dexec_ws_messages_sent_total") - events_before
    frames_sent = sent("dexec_ws_frames_sent_total") - frames_before
    assert events_sent == report["events"]["received"]
    if frames == "single":
        assert frames_sent == events_sent
    elif sockets == "multiplexed":
        assert frames_sent < events_sent  # a command's backfills, or queued events, shared one
    else:
        assert frames_sent <= events_sent
    # No --ws given: the notifier's address came from the API's /api/config.
    assert report["params"]["ws_url"] == stack.ws_url
    assert report["orders"]["retries"] == 0
    sockets_opened = report["events"]["sockets_opened"]
    if sockets == "per-order":
        assert sockets_opened == ORDERS
    else:
        assert sockets_opened == 2 * 4  # two workers, four sockets each
    assert f"accepted {ORDERS}" in text and "pending → terminal" in text


async def test_rate_limited_orders_are_retried_with_their_key_until_accepted(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    stack: Stack = await start(rate_limit_per_second=100, rate_limit_burst=20)

    # Paced at four times what the API lets through.
    code, _, report = await run_loadgen(
        stack, tmp_path / "report.json", "--concurrency", "32", "--rate", "400"
    )

    assert code == 0
    assert report["orders"]["retries"] > 0  # 429s, each retried after its Retry-After
    assert_every_order_seen_once(report)
    # A retried order's wait (Retry-After is at least a second) counts from its scheduled
    # time, though not in the round trip of the attempt that was accepted.
    latency = report["latency_ms"]
    assert_ordered(latency["post_from_schedule"], ORDERS)
    assert latency["post_from_schedule"]["max"] >= 1000
    assert latency["post_from_schedule"]["p50"] >= latency["post"]["p50"]

    # Each order was created once: Postgres ends up with exactly the accepted orders.
    async def recorded() -> bool:
        return await stack.scalar("select count(*) from orders") == ORDERS

    await eventually(recorded, timeout=30, what=f"{ORDERS} orders in Postgres")
    assert await stack.scalar("select count(*) from orders") == ORDERS


async def test_subscriptions_refused_for_their_rate_are_sent_again_when_allowed(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    # One socket per worker, 100 orders each, against 20 subscriptions a second (20 at once):
    # many of a worker's ids are refused with RATE_LIMITED at first.
    stack: Stack = await start(ws_subscribe_rate=20, ws_subscribe_burst=20)

    code, _, report = await run_loadgen(
        stack, tmp_path / "report.json", "--sockets-per-worker", "1"
    )

    assert report["events"]["error_frames"].get("RATE_LIMITED", 0) > 0
    assert code == 0
    report["events"]["error_frames"].pop("RATE_LIMITED")
    assert_every_order_seen_once(report)


async def test_single_order_sockets_refused_for_their_rate_connect_again_later(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    # With API keys on, a tenant's single-order sockets draw on its subscribe budget: 200
    # sockets opened as fast as orders are accepted, against 50 a second (20 at once).
    key = "load-key-0123456789"
    stack: Stack = await start(
        api_keys_enabled=True,
        api_keys={"load": hash_api_key(key)},
        ws_subscribe_rate=50,
        ws_subscribe_burst=20,
    )

    code, _, report = await run_loadgen(
        stack, tmp_path / "report.json", "--api-key", key, "--sockets", "per-order"
    )

    assert report["events"]["abnormal_closes"].get("4429", 0) > 0
    assert code == 0
    report["events"]["error_frames"].pop("RATE_LIMITED")
    assert_every_order_seen_once(report)


async def test_with_api_keys_on_the_key_goes_with_every_post_and_socket(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    key = "load-key-0123456789"
    stack: Stack = await start(api_keys_enabled=True, api_keys={"load": hash_api_key(key)})

    code, _, report = await run_loadgen(stack, tmp_path / "report.json", "--api-key", key)

    assert code == 0
    assert_every_order_seen_once(report)
    assert report["params"]["api_key"] == "***"  # never echoed into the report


async def test_sockets_cut_off_mid_run_resume_without_losing_or_repeating_events(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    # A notifier that queues at most one live event per socket cuts off (1008) a multiplexed
    # socket as soon as events for its orders arrive faster than it sends them, as they do
    # when 25 orders per socket run at once: the generator must reconnect and resume each
    # order after the last seq it saw.
    stack: Stack = await start(ws_queue_limit=1)

    code, _, report = await run_loadgen(stack, tmp_path / "report.json")

    assert report["events"]["abnormal_closes"].get("1008", 0) > 0
    assert report["events"]["reconnects"] > 0
    assert code == 0
    assert_every_order_seen_once(report)
