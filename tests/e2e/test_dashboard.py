"""End to end: the dashboard at `/`, driven in headless Chromium against the real services.

The stack is the in-process one (`tests/support/stack.py`) in realistic latency mode, so a
burst's statuses visibly move through the lifecycle. Playwright drives Debian's `chromium` by
its executable path (Playwright cannot download its own browser here) in the suite's event
loop, which keeps serving the API and the notifier while the browser waits. Every wait on the
page is Playwright's own (auto-waiting locators and `expect`), never a sleep.
"""

from __future__ import annotations

import os
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import playwright.async_api as playwright_api
import pytest

from tests.e2e.browser import CHROMIUM_PATH, launch_chromium
from tests.support.stack import Stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
expect = playwright_api.expect


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BURST = 10
TERMINAL = ("confirmed", "failed")
HAPPY_PATH = ["pending", "routing", "building", "submitted", "confirmed"]
RANK = {"pending": 0, "routing": 1, "building": 2, "submitted": 3, "confirmed": 4, "failed": 4}
TERMINAL_TIMEOUT_MS = 90_000
DURATION = re.compile(r"^(\d+ ms|\d+\.\d+ s)$")

# Records every status each row shows, in order, as the page changes it.
WATCH_STATUSES = """
() => {
  const log = (window.__statuses = {});
  const note = (row) => {
    const id = row.dataset.orderId, status = row.dataset.status;
    const seen = (log[id] = log[id] || []);
    if (seen[seen.length - 1] !== status) seen.push(status);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") note(r.target);
      for (const n of r.addedNodes || []) if (n.dataset && n.dataset.orderId) note(n);
    }
  }).observe(document.querySelector("[data-testid=orders-body]"), {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"],
  });
}
"""


def decimal_text(value: Decimal | str) -> str:
    """What the page shows for a decimal: exact, grouped, no trailing zeros."""
    return f"{Decimal(value).normalize():,f}"


def token_units(base: str, decimals: int) -> str:
    return decimal_text(Decimal(base).scaleb(-decimals))


def console_problem(message: Any) -> list[str]:
    """A console error, except the one the page expects while `GET /api/tokens` is absent.

    Chromium logs every 404 response to the console; the page then uses its built-in list.
    """
    if message.type != "error":
        return []
    url = (message.location or {}).get("url", "")
    if urlsplit(url).path == "/api/tokens" and "404" in message.text:
        return []
    return [f"console.error: {message.text} ({url})"]


@pytest.fixture
def chromium_path() -> str:
    # `make test` installs it (tools/system-packages.sh); a missing browser is a failure.
    assert shutil.which(CHROMIUM_PATH) or os.path.exists(CHROMIUM_PATH), (
        f"{CHROMIUM_PATH} is missing: run `make test`, or apt-get install chromium"
    )
    return CHROMIUM_PATH


# "auto": the page's choice (one multiplexed socket if the notifier offers it); "per-order": the
# fallback, one socket per order, forced with ?transport=per-order.
@pytest.mark.parametrize("transport", ["auto", "per-order"])
async def test_dashboard_burst_live_table_details_and_chart(
    start: Any, chromium_path: str, transport: str
) -> None:
    stack = await start(latency_mode="realistic", slot_ms=100)
    problems: list[str] = []
    elsewhere: list[str] = []
    host = urlsplit(stack.api_url).hostname

    def note_url(url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != host:
            elsewhere.append(url)

    async with playwright_api.async_playwright() as pw:
        browser = await launch_chromium(pw, chromium_path)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: problems.extend(console_problem(m)))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: note_url(r.url))
            page.on("websocket", lambda ws: note_url(ws.url))

            query = "" if transport == "auto" else f"?transport={transport}"
            response = await page.goto(f"{stack.api_url}/{query}")
            assert response is not None and response.ok
            await expect(page.locator("body")).to_have_attribute("data-ready", "true")
            if transport == "per-order":
                await expect(page.get_by_test_id("transport")).to_have_attribute(
                    "data-mode", "per-order"
                )
            await page.evaluate(WATCH_STATUSES)

            shown = await submit_burst_and_wait(page)
            await check_rows_match_api(page, stack, shown)
            confirmed = [order_id for order_id, status in shown.items() if status == "confirmed"]
            assert confirmed, f"no order confirmed: {shown}"
            await check_details(page, stack, confirmed[0])
            await check_chart(page, len(confirmed))

            ARTIFACTS.mkdir(exist_ok=True)
            name = "dashboard.png" if transport == "auto" else f"dashboard-{transport}.png"
            await page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        finally:
            await browser.close()

    assert not problems, problems
    assert not elsewhere, f"the page reached beyond {host}: {elsewhere}"


async def submit_burst_and_wait(page: Any) -> dict[str, str]:
    """Submit a burst of BURST orders from the form; wait until every row is terminal."""
    await expect(page.get_by_test_id("token-in")).to_have_value("SOL")
    await expect(page.get_by_test_id("token-out")).to_have_value("USDC")
    await page.get_by_test_id("amount").fill("1.5")
    await page.get_by_test_id("slippage").fill("300")
    await page.get_by_test_id("burst-size").fill(str(BURST))
    await page.get_by_test_id("submit-burst").click()

    rows = page.get_by_test_id("order-row")
    await expect(rows).to_have_count(BURST, timeout=20_000)
    await expect(page.get_by_test_id("form-message")).to_have_text(f"{BURST} orders submitted.")
    finished = page.locator("[data-testid=order-row][data-terminal=true]")
    await expect(finished).to_have_count(BURST, timeout=TERMINAL_TIMEOUT_MS)
    for status in await page.get_by_test_id("order-status").all_inner_texts():
        assert status in TERMINAL
    return {
        await row.get_attribute("data-order-id"): await row.get_attribute("data-status")
        for row in await rows.all()
    }


async def check_rows_match_api(page: Any, stack: Stack, shown: dict[str, str]) -> None:
    """The rows are the API's orders with the API's outcome, and each changed live, forward."""
    assert len(shown) == BURST

    async def listed_when_recorded() -> dict[str, str] | None:
        body = (await stack.http.get(f"{stack.api_url}/api/orders?limit=50")).json()
        listed = {o["orderId"]: o["status"] for o in body["orders"]}
        return listed if all(status in TERMINAL for status in listed.values()) else None

    assert await eventually(listed_when_recorded, 30, "the recorder to catch up") == shown

    history: dict[str, list[str]] = await page.evaluate("window.__statuses")
    assert set(history) == set(shown)
    for order_id, seen in history.items():
        assert seen[0] == "pending", (order_id, seen)
        assert seen[-1] == shown[order_id], (order_id, seen)
        assert [RANK[s] for s in seen] == sorted({RANK[s] for s in seen}), (order_id, seen)
        if seen[-1] == "confirmed":
            assert seen == HAPPY_PATH, (order_id, seen)


async def check_details(page: Any, stack: Stack, order_id: str) -> None:
    """The details panel shows what `GET /api/orders/{id}` says: route, quotes, outcome."""
    order = (await stack.http.get(f"{stack.api_url}/api/orders/{order_id}")).json()
    route, execution = order["route"], order["execution"]
    plan = route["routePlan"]

    await page.locator(f"[data-testid=order-row][data-order-id='{order_id}']").click()
    details = page.get_by_test_id("order-details")
    await expect(details.get_by_test_id("detail-order-id")).to_have_text(order_id)
    await expect(details.get_by_test_id("detail-status")).to_have_text("confirmed")

    # Every venue's quote, and the chosen venue(s) marked.
    quotes = details.get_by_test_id("quote-row")
    await expect(quotes).to_have_count(len(route["quotes"]))
    venues = [await q.get_attribute("data-venue") for q in await quotes.all()]
    assert venues == [q["venue"] for q in route["quotes"]]
    assert {"raydium", "meteora"} <= set(venues)
    chosen = list(dict.fromkeys(leg["venue"] for leg in plan))
    await expect(details.get_by_test_id("chosen-venue")).to_have_text(" + ".join(chosen))
    used = details.locator("[data-testid=quote-row][data-chosen=true]")
    assert {await q.get_attribute("data-venue") for q in await used.all()} == set(chosen)
    legs = details.get_by_test_id("route-leg")
    await expect(legs).to_have_count(len(plan))
    shown_legs = [
        (await leg.get_attribute("data-venue"), await leg.get_attribute("data-percent"))
        for leg in await legs.all()
    ]
    assert shown_legs == [(leg["venue"], str(leg["percent"])) for leg in plan]
    await expect(details.get_by_test_id("route-reason")).to_have_text(route["reason"])
    await expect(details.get_by_test_id("price-impact")).to_have_text(
        f"{decimal_text(route['priceImpactPct'])}%"
    )

    # The outcome, amounts in token units.
    await expect(details.get_by_test_id("tx-hash")).to_have_text(execution["txHash"])
    await expect(details.get_by_test_id("executed-price")).to_have_text(
        f"1 SOL = {decimal_text(execution['executedPrice'])} USDC"
    )
    await expect(details.get_by_test_id("amount-in")).to_have_text(
        f"{token_units(execution['inAmount'], 9)} SOL"
    )
    await expect(details.get_by_test_id("amount-out")).to_have_text(
        f"{token_units(execution['outAmount'], 6)} USDC"
    )
    await expect(details.get_by_test_id("timeline-event")).to_have_count(len(order["events"]))


async def check_chart(page: Any, confirmed: int) -> None:
    """The chart counted every confirmation of the last minute and drew rate and latency."""
    await expect(page.get_by_test_id("chart-svg")).to_have_attribute(
        "data-confirmed", str(confirmed)
    )
    await expect(page.get_by_test_id("stat-confirmed")).to_have_text(str(confirmed))
    await expect(page.get_by_test_id("throughput-bar").first).to_be_visible()
    await expect(page.get_by_test_id("latency-p50")).to_have_count(1)
    await expect(page.get_by_test_id("stat-p50")).to_have_text(DURATION)
    await expect(page.get_by_test_id("stat-p90")).to_have_text(DURATION)
