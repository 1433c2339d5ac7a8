"""What reading a `routed` event costs the executor: the whole `Route`, or its `SwapPlan`.

An experiment for BENCHMARKS.md ("The executor reads only the swap"), not part of the engine
or its tests. The router's `routed` payload carries every venue quote and every candidate
route it weighed (~4.7 KB for SOL→USDC on the default market); the executor signs and
executes only the chosen plan. This times, per event, in this process:

- `route`: `OrderEvent.from_json` then `payload()`, the whole `Route` (before);
- `swap-plan`: `OrderEvent.from_json` then `SwapPlan.model_validate(data)` (after);

on a `routed` event the router's own planner builds (default market, zero latency). Each
variant runs `--number` parses per sample; the variants alternate, `--rounds` times, and the
summary gives each one's median µs per event and the ratio of `swap-plan` to `route`.

    uv run --frozen python tools/experiments/routed_parse_cost.py --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import timeit
from collections.abc import Callable

from dexec.market.chain import SlotClock
from dexec.market.market import Market
from dexec.market.tokens import resolve_token
from dexec.orders.events import OrderEvent, SwapPlan
from dexec.orders.states import EventType, OrderStatus
from dexec_router.planner import RoutePlanner
from dexec_router.settings import RouterSettings


async def routed_event() -> bytes:
    settings = RouterSettings(latency_mode="zero")
    planner = RoutePlanner(Market.from_settings(settings), settings, SlotClock(settings.slot_ms))
    sol, usdc = resolve_token("SOL"), resolve_token("USDC")
    route = await planner.plan(sol, usdc, 10**8, 50, key="experiment")
    return OrderEvent.of("experiment", EventType.ROUTED, OrderStatus.ROUTING, route).to_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    raw = asyncio.run(routed_event())
    variants: dict[str, Callable[[], object]] = {
        "route": lambda: OrderEvent.from_json(raw).payload(),
        "swap-plan": lambda: SwapPlan.model_validate(OrderEvent.from_json(raw).data),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, parse in variants.items():
            seconds = timeit.timeit(parse, number=args.number)
            samples[name].append(seconds / args.number * 1e6)
    print(f"routed event: {len(raw)} bytes; {args.rounds} rounds of {args.number} parses")
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, median in medians.items():
        print(f"  {name:10} {median:6.1f} µs per event")
    print(f"  swap-plan / route: x{medians['swap-plan'] / medians['route']:.2f}")


if __name__ == "__main__":
    main()
