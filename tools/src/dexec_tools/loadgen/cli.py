"""`dexec-load`: submit N orders, follow each to its end, report throughput and latencies.

Exit status: 0 when every order was accepted and seen to its end once and in order; 1 when
any was refused, lost, stuck, duplicated or out of order; 2 for bad arguments or a failed run.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson

from dexec_tools.loadgen.config import RunConfig
from dexec_tools.loadgen.progress import Progress
from dexec_tools.loadgen.report import ServiceFigures, build_report, exit_status, render_text
from dexec_tools.loadgen.rss import Discovery, ServiceSampler, discover, parse_pids
from dexec_tools.loadgen.runner import WorkerFailed, run_workers
from dexec_tools.loadgen.schedule import Amounts
from dexec_tools.loadgen.stats import compute

DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_WS = "ws://127.0.0.1:8001"


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dexec-load",
        description="Submit market orders to a dexec engine at a target rate, follow every "
        "order over WebSockets to its terminal event, and report accept and completion "
        "throughput, POST, per-stage and delivery latencies, lost/stuck/duplicated counts, "
        "the services' peak RSS and the generator's own CPU use.",
        formatter_class=_Help,
    )
    target = p.add_argument_group("target")
    target.add_argument("--api", default=DEFAULT_API, help="the API's base URL")
    target.add_argument(
        "--ws",
        default=None,
        help=f"the notifier's base URL (default: wsUrl from GET /api/config, else {DEFAULT_WS})",
    )
    target.add_argument("--api-key", default=None, help="sent as X-API-Key and ?apiKey=")
    load = p.add_argument_group("load")
    load.add_argument("--orders", type=_positive_int, default=1000, help="orders to submit")
    load.add_argument(
        "--rate", type=_non_negative_float, default=0.0, help="orders/s; 0: as fast as accepted"
    )
    load.add_argument("--concurrency", type=_positive_int, default=64, help="POSTs in flight")
    load.add_argument("--workers", type=_positive_int, default=2, help="worker processes")
    load.add_argument(
        "--sockets",
        choices=("multiplexed", "per-order"),
        default="multiplexed",
        help="a few /ws sockets per worker with batched subscriptions, or one socket per order",
    )
    load.add_argument(
        "--sockets-per-worker",
        type=_positive_int,
        default=4,
        help="multiplexed: sockets each worker opens (more open if in-flight orders need them)",
    )
    load.add_argument(
        "--subscribe-batch-ms",
        type=_non_negative_float,
        default=10.0,
        help="multiplexed: how long subscriptions are gathered into one command",
    )
    load.add_argument(
        "--frames",
        choices=("batch", "single"),
        default="batch",
        help="ask the notifier for each socket's ready events as one JSON-array frame "
        "(?batch=true), or one frame per event",
    )
    load.add_argument(
        "--timeout",
        type=_non_negative_float,
        default=60.0,
        help="seconds after the last POST to wait for terminal events (then: stuck or lost)",
    )
    load.add_argument("--max-retries", type=int, default=20, help="per order, on 429/503/errors")
    order = p.add_argument_group("orders")
    order.add_argument("--pair", default="SOL/USDC", help="BASE/QUOTE: sells BASE for QUOTE")
    order.add_argument("--amount", default="0.1", help="of BASE per order, a decimal")
    order.add_argument(
        "--amount-jitter-bps",
        type=int,
        default=100,
        help="each order's amount varies by up to ± this many bps (so every order differs)",
    )
    order.add_argument(
        "--amount-decimals", type=int, default=6, help="decimal places of the variation"
    )
    order.add_argument("--slippage-bps", type=int, default=None, help="default: the API's")
    order.add_argument("--seed", type=int, default=1, help="seeds the amount variation")
    order.add_argument(
        "--run-id", default=None, help="prefix of the Idempotency-Keys (default: random)"
    )
    output = p.add_argument_group("output")
    output.add_argument("--json", type=Path, default=None, help="also write the report here")
    output.add_argument(
        "--services-pids",
        default=None,
        help="name=pid,… of the processes to sample RSS of (default: found from the API port)",
    )
    output.add_argument("--no-rss", action="store_true", help="do not sample the services' RSS")
    output.add_argument(
        "--settle-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="after the run, wait up to this long for the engine's CPU use to fall to idle, "
        "to count the CPU of work still under way (0: do not wait)",
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    output.add_argument(
        "--ws-compression", action="store_true", help="negotiate permessage-deflate"
    )
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def resolve_ws_url(api_url: str, api_key: str | None) -> str:
    """The notifier's address as the API advertises it to browsers, else the default."""
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        # trust_env=False: an HTTP(S)_PROXY from the environment must not see local calls.
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            response = client.get(f"{api_url.rstrip('/')}/api/config", headers=headers)
            response.raise_for_status()
            return str(response.json()["wsUrl"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        print(f"dexec-load: GET /api/config failed ({exc!r}); using {DEFAULT_WS}", file=sys.stderr)
        return DEFAULT_WS


def config_from(args: argparse.Namespace) -> RunConfig:
    base, slash, quote = args.pair.partition("/")
    if not slash or not base or not quote:
        raise ValueError(f"--pair wants BASE/QUOTE, not {args.pair!r}")
    # Refuse a bad amount here, not in every worker.
    Amounts(args.amount, args.amount_decimals, args.amount_jitter_bps, random.Random())
    return RunConfig(
        api_url=args.api.rstrip("/"),
        ws_url=(args.ws or resolve_ws_url(args.api, args.api_key)).rstrip("/"),
        orders=args.orders,
        rate=args.rate,
        concurrency=args.concurrency,
        workers=min(args.workers, args.orders, args.concurrency),  # each needs a POST slot
        sockets=args.sockets,
        sockets_per_worker=args.sockets_per_worker,
        subscribe_batch_seconds=args.subscribe_batch_ms / 1000,
        batched_frames=args.frames == "batch",
        timeout=args.timeout,
        token_in=base,
        token_out=quote,
        amount=args.amount,
        amount_decimals=args.amount_decimals,
        amount_jitter_bps=args.amount_jitter_bps,
        slippage_bps=args.slippage_bps,
        api_key=args.api_key,
        run_id=args.run_id or f"load-{uuid.uuid4().hex[:12]}",
        max_retries=args.max_retries,
        seed=args.seed,
        ws_compression=args.ws_compression,
    )


def _discovery(args: argparse.Namespace) -> Discovery:
    if args.no_rss:
        return Discovery(note="not sampled (--no-rss)")
    if args.services_pids:
        return parse_pids(args.services_pids)
    return discover(args.api)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
        discovery = _discovery(args)
    except ValueError as exc:
        parser().error(str(exc))
    progress = Progress(config.orders, enabled=not args.no_progress)
    try:
        with ServiceSampler(discovery.watched) as sampler:
            outcome = run_workers(config, progress, on_start=sampler.window_start)
            sampler.window_end()
            sampler.settle(args.settle_timeout)
    except WorkerFailed as exc:
        progress.close()
        print(f"dexec-load: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        progress.close()
        print("dexec-load: interrupted, no report", file=sys.stderr)
        sys.exit(130)
    progress.close()
    stats = compute(sample for result in outcome.results for sample in result.orders)
    report = build_report(
        config,
        stats,
        outcome.results,
        outcome.parent_cpu,
        ServiceFigures(
            sampler.peaks_mib(),
            sampler.cpu_percent,
            discovery.note,
            sampler.cpu_seconds_to_settle,
            sampler.settle_seconds,
        ),
    )
    print(render_text(report))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    sys.exit(exit_status(report))


if __name__ == "__main__":
    main()
