"""The router's metrics: venue quotes, the routes it chooses, and its two stages.

Called from the router's code (each call is one dict lookup and an observe or two):

- `observe_quote(venue, outcome, seconds)`: once per venue asked, in `quoting._why_not`;
- `routing_started(pending, attempt)`: right after `routing` is published, in
  `RouterService.handle`; it returns the start of routing → routed;
- `observe_routed(route, started)`: right after `routed` is published;
- `route_log_fields(route)`: the `extra` of the "routed" log line, so each routing decision is
  logged with every venue's quote.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Histogram

from dexec.metrics import STAGE_DURATION, Children, StageName
from dexec.orders.events import OrderEvent, Route

QUOTES = Counter(
    "dexec_quotes_total",
    "Venue quote requests (one read of a venue's pools per route planned), by outcome",
    ["venue", "outcome"],
)
QUOTE_DURATION = Histogram(
    "dexec_quote_duration_seconds",
    "Round trip of one venue quote request, until it answered, failed or timed out",
    ["venue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, 2.0, 5.0),
)
ROUTES = Counter(
    "dexec_routes_total",
    "Routes chosen for orders, by the venues they use (joined with +), hops and whether a hop "
    "is split across pools",
    ["venues", "hops", "split"],
)
ROUTE_VENUE_SHARE = Counter(
    "dexec_route_venue_share_total",
    "Orders' worth of flow routed to each venue: each routed order adds the share of its input "
    "each venue swaps (a two-hop route counts each hop half), so the venues add up to the "
    "orders routed",
    ["venue"],
)


class QuoteOutcome(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"


_QUOTES = Children(QUOTES)  # by (venue, outcome)
_QUOTE_DURATION = Children(QUOTE_DURATION)  # by venue
_ROUTES = Children(ROUTES)  # by (venues, hops, split)
_SHARE = Children(ROUTE_VENUE_SHARE)  # by venue
ACCEPT_TO_ROUTING = STAGE_DURATION.labels(StageName.ACCEPT_TO_ROUTING)
ROUTING_TO_ROUTED = STAGE_DURATION.labels(StageName.ROUTING_TO_ROUTED)


def observe_quote(venue: str, outcome: QuoteOutcome, seconds: float) -> None:
    _QUOTES[venue, outcome].inc()
    _QUOTE_DURATION[venue].observe(seconds)


def routing_started(pending: OrderEvent, attempt: int) -> float:
    """Observe accept → routing (on the first delivery only: a redelivery's wait would count
    the backoff), and return the start of routing → routed for `observe_routed`."""
    if attempt == 1:
        ACCEPT_TO_ROUTING.observe(time.time() - pending.at.timestamp())
    return time.perf_counter()


def observe_routed(route: Route, started: float) -> None:
    ROUTING_TO_ROUTED.observe(time.perf_counter() - started)
    legs_per_hop: dict[str | None, int] = {}
    for leg in route.route_plan:
        legs_per_hop[leg.input_mint] = legs_per_hop.get(leg.input_mint, 0) + 1
    hops = len(legs_per_hop) or 1
    venues = "+".join(sorted({leg.venue for leg in route.route_plan}))
    split = "yes" if any(count > 1 for count in legs_per_hop.values()) else "no"
    _ROUTES[venues, str(hops), split].inc()
    for leg in route.route_plan:
        # `percent` is the leg's share of its hop's input.
        _SHARE[leg.venue].inc(leg.percent / 100 / hops)


def route_log_fields(route: Route) -> dict[str, Any]:
    """Structured fields for the routing decision's log line: every quote, and who failed."""
    return {
        "quotes": [
            q.model_dump(mode="json", by_alias=True, exclude_none=True) for q in route.quotes
        ],
        "failed_venues": route.failed_venues,
        "out_amount": str(route.out_amount),
    }
