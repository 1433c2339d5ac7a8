"""Planning one route: ask the venues, then choose among the candidates on what they showed.

Shared by the order path (`pending` → `routed`) and the quote endpoint, so a quote is exactly
what an order placed at that moment would be routed on.
"""

from __future__ import annotations

from typing import Any

from dexec.market.chain import SlotClock
from dexec.market.market import Market
from dexec.market.routing import NoRoute, find_route
from dexec.market.tokens import Token
from dexec.orders.events import Route
from dexec_router.quoting import NO_POOL, fetch_view
from dexec_router.settings import RouterSettings


class RoutingFailed(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any], retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable


class RoutePlanner:
    def __init__(self, market: Market, settings: RouterSettings, clock: SlotClock) -> None:
        self.market = market
        self.settings = settings
        self.clock = clock

    async def plan(
        self, token_in: Token, token_out: Token, amount_in: int, slippage_bps: int, key: str
    ) -> Route:
        """The best route now; `key` seeds the simulated venue latency and failures."""
        s = self.settings
        pools = self.market.route_pools(token_in, token_out)
        view, failed = await fetch_view(
            self.market, s, pools, s.quote_timeout_seconds, key, self.clock.now
        )
        try:
            return find_route(
                view,
                token_in,
                token_out,
                amount_in,
                slippage_bps,
                priority_fee_lamports=s.priority_fee_lamports,
                failed_venues=failed,
                split_step_percent=s.split_step_percent,
            )
        except NoRoute as exc:
            details = {"venues": failed}
            # A venue that timed out or failed may have had the route: worth retrying.
            if any(reason != NO_POOL for reason in failed.values()):
                raise RoutingFailed(
                    "QUOTES_UNAVAILABLE", "no venue with a route answered", details, True
                ) from exc
            raise RoutingFailed(
                "NO_ROUTE",
                f"no route from {token_in.symbol} to {token_out.symbol} fills this amount",
                details,
                False,
            ) from exc
