"""Metrics with logic in them: the router's route shapes and venue shares, HTTP route labels."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route as HttpRoute

from dexec.http_metrics import instrument
from dexec.orders.events import Route
from dexec_router.metrics import observe_routed, route_log_fields

SOL, USDC, BONK = "So11111111111111111111111111111111111111112", "EPjFW", "DezX"


def leg(venue: str, percent: int, input_mint: str = SOL, output_mint: str = USDC) -> dict:
    return {
        "venue": venue,
        "pool": f"{venue}-pool",
        "inAmount": "100",
        "outAmount": "99",
        "feeAmount": "1",
        "percent": percent,
        "inputMint": input_mint,
        "outputMint": output_mint,
    }


def route(*legs: dict) -> Route:
    quote = {
        "venue": "raydium",
        "pool": "raydium-pool",
        "inAmount": "100",
        "outAmount": "99",
        "feeAmount": "1",
        "priceImpactPct": "0.01",
        "contextSlot": 7,
    }
    return Route.model_validate(
        {
            "inputMint": SOL,
            "outputMint": USDC,
            "inAmount": "100",
            "outAmount": "99",
            "otherAmountThreshold": "98",
            "priceImpactPct": "0.01",
            "routePlan": list(legs),
            "contextSlot": 7,
            "networkFeeLamports": "5000",
            "quotes": [quote],
            "failedVenues": {"meteora": "timeout"},
            "reason": "raydium gives more",
        }
    )


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delta(name: str, labels: dict[str, str], action: Callable[[], object]) -> float:
    before = value(name, **labels)
    action()
    return value(name, **labels) - before


@pytest.mark.parametrize(
    ("legs", "labels", "shares"),
    [
        ([leg("raydium", 100)], ("raydium", "1", "no"), {"raydium": 1.0}),
        (
            [leg("raydium", 60), leg("meteora", 40)],
            ("meteora+raydium", "1", "yes"),
            {"raydium": 0.6, "meteora": 0.4},
        ),
        (
            [leg("meteora", 100, BONK, SOL), leg("raydium", 100, SOL, USDC)],
            ("meteora+raydium", "2", "no"),
            {"raydium": 0.5, "meteora": 0.5},
        ),
    ],
)
def test_a_route_is_counted_by_venues_hops_and_split_and_its_flow_shared_out(
    legs: list[dict], labels: tuple[str, str, str], shares: dict[str, float]
) -> None:
    chosen = route(*legs)
    venues, hops, split = labels
    route_labels = {"venues": venues, "hops": hops, "split": split}
    share_before = {v: value("dexec_route_venue_share_total", venue=v) for v in shares}

    routes = delta("dexec_routes_total", route_labels, lambda: observe_routed(chosen, 0.0))

    assert routes == 1
    for venue, share in shares.items():
        gained = value("dexec_route_venue_share_total", venue=venue) - share_before[venue]
        assert gained == pytest.approx(share)


def test_the_routing_log_line_carries_every_quote_and_the_failed_venues() -> None:
    fields = route_log_fields(route(leg("raydium", 100)))
    assert [q["venue"] for q in fields["quotes"]] == ["raydium"]
    assert fields["quotes"][0]["outAmount"] == "99"
    assert fields["failed_venues"] == {"meteora": "timeout"}


async def test_http_requests_are_labelled_by_route_template_never_the_raw_path() -> None:
    async def order(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["order_id"])

    app = Starlette(routes=[HttpRoute("/api/orders/{order_id}", order)])
    instrument(app, "api")
    api = {"service": "api"}
    template = {**api, "route": "/api/orders/{order_id}", "method": "GET", "status": "200"}
    unmatched = {**api, "route": "unmatched", "method": "GET", "status": "404"}
    made_up = {**api, "route": "/api/orders/{order_id}", "method": "OTHER", "status": "405"}
    count = "dexec_http_request_duration_seconds_count"
    before = [value(count, **labels) for labels in (template, unmatched, made_up)]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/api/orders/abc-123")).text == "abc-123"
        assert (await client.get("/api/orders/def-456")).status_code == 200
        assert (await client.get("/nowhere/abc-123")).status_code == 404
        assert (await client.request("BREW", "/api/orders/abc-123")).status_code == 405
        exposition = await client.get("/metrics")

    after = [value(count, **labels) for labels in (template, unmatched, made_up)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]
    assert exposition.status_code == 200  # exactly /metrics, no redirect to /metrics/
    assert "abc-123" not in exposition.text and "BREW" not in exposition.text
