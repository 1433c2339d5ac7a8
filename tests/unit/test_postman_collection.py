"""Every request in the Postman collection matches a real route, and every body is valid."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match

from dexec_api.app import create_app as create_api
from dexec_api.order_request import parse_order
from dexec_notifier.app import create_app as create_notifier

COLLECTION = Path(__file__).parents[2] / "postman" / "dexec.postman_collection.json"
ITEMS = json.loads(COLLECTION.read_text())["item"]
SAMPLE = {"orderId": "0b1e5f7a-0000-4000-8000-000000000000", "apiKey": "k"}


def resolve(url: str) -> tuple[str, str]:
    """(`http` or `websocket`, path) of a request URL with the collection's variables."""
    scheme = "websocket" if url.startswith("{{wsUrl}}") else "http"
    path = re.sub(r"^\{\{(baseUrl|wsUrl)\}\}", "", url).split("?")[0]
    return scheme, re.sub(r"\{\{(\w+)\}\}", lambda m: SAMPLE[m[1]], path)


def matches(app: Any, scope_type: str, path: str, method: str) -> bool:
    scope = {"type": scope_type, "path": path, "method": method, "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


@pytest.mark.parametrize("item", ITEMS, ids=[item["name"] for item in ITEMS])
def test_request_matches_a_route(item: dict[str, Any]) -> None:
    request = item["request"]
    scope_type, path = resolve(request["url"]["raw"])
    app = create_notifier() if scope_type == "websocket" else create_api()
    assert matches(app, scope_type, path, request["method"]), (request["method"], path)


@pytest.mark.parametrize(
    "item", [i for i in ITEMS if "body" in i["request"]], ids=lambda item: item["name"]
)
def test_request_body_is_a_valid_order(item: dict[str, Any]) -> None:
    body = json.loads(item["request"]["body"]["raw"])
    spec = parse_order(body, default_slippage_bps=50, tenant=None)
    assert spec.amount_in > 0


def test_collection_covers_the_api() -> None:
    names = " ".join(item["name"].lower() for item in ITEMS)
    for what in ("submit", "get the order", "list", "quote", "websocket"):
        assert what in names
