"""HEAD: every GET route answers it as GET would, without the body (RFC 9110 §9.3.2).

The HEAD requests go over a bare socket and read to the end of the connection, so the tests
see what uvicorn puts on the wire: an HTTP client knows a HEAD response has no body and would
not notice one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dexec.auth import hash_api_key
from tests.support.stack import Stack
from tests.support.waiting import eventually

ORDER = {"type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 50}
ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


async def raw_head(
    api_url: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """HEAD `path` with `Connection: close`: the status, the headers (lower-case names), and
    every byte the server sent after them until it closed the connection."""
    host, port = api_url.removeprefix("http://").split(":")
    lines = [f"HEAD {path} HTTP/1.1", "Host: dexec", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()  # to EOF: the server closes after its response
    finally:
        writer.close()
        await writer.wait_closed()
    head, separator, after = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete response head: {raw!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v.strip() for k, _, v in fields}, after


def described(headers: Any) -> tuple[str | None, str | None]:
    """What a HEAD must say of the GET's body: its type and its length."""
    return headers.get("content-type"), headers.get("content-length")


async def confirmed_and_recorded(stack: Stack, **headers: str) -> str:
    """An order placed and recorded as confirmed, so that reading it gives the same answer
    from then on (while the recorder catches up, it is read from the stream)."""
    accepted = await stack.submit(ORDER, **headers)
    assert accepted.status_code == 202
    order_id = accepted.json()["orderId"]

    async def recorded() -> bool:
        listed = await stack.http.get(f"{stack.api_url}/api/orders", headers=headers)
        return any(
            o["orderId"] == order_id and o["status"] == "confirmed" for o in listed.json()["orders"]
        )

    await eventually(recorded, 30, "the order recorded as confirmed")
    return order_id


async def test_head_of_an_order_is_its_get_without_the_body(stack: Stack) -> None:
    order_id = await confirmed_and_recorded(stack)
    path = f"/api/orders/{order_id}"
    get = await stack.http.get(f"{stack.api_url}{path}")
    assert get.status_code == 200

    status, headers, body = await raw_head(stack.api_url, path)

    assert status == 200
    assert body == b""  # uvicorn sent the headers only
    assert described(headers) == described(get.headers)
    assert described(headers) == ("application/json", str(len(get.content)))

    # Counted as a HEAD, under the route's template, like any request.
    async def counted() -> bool:
        metrics = (await stack.http.get(f"{stack.api_url}/metrics")).text
        return any(
            line.startswith("dexec_http_request_duration_seconds_count")
            and 'route="/api/orders/{order_id}"' in line
            and 'method="HEAD"' in line
            and 'status="200"' in line
            for line in metrics.splitlines()
        )

    await eventually(counted, 10, "the HEAD to be counted")


async def test_head_of_an_unknown_order_is_a_404_without_the_body(stack: Stack) -> None:
    get = await stack.http.get(f"{stack.api_url}/api/orders/nope")
    assert get.status_code == 404 and get.json()["error"]["code"] == "ORDER_NOT_FOUND"

    status, headers, body = await raw_head(stack.api_url, "/api/orders/nope")

    assert (status, body) == (404, b"")
    assert described(headers) == described(get.headers)


# Every GET route, FastAPI's and Starlette's (metrics, the OpenAPI document: those took HEAD
# already). These answer the same bytes every time, so a HEAD's Content-Length must match...
STABLE = ["/healthz", "/api/config", "/", "/dashboard/app.js", "/openapi.json"]
# ...these the same status and type (their bodies change: metrics, slots, checks).
CHANGING = [
    "/readyz",
    "/metrics",
    "/metrics/",
    "/api/orders",
    "/api/tokens",
    "/api/venues",
    "/api/quote?tokenIn=SOL&tokenOut=USDC&amount=1",
]


async def test_every_get_route_answers_head(stack: Stack) -> None:
    for path in STABLE + CHANGING:
        get = await stack.http.get(f"{stack.api_url}{path}")
        assert get.status_code == 200, path

        status, headers, body = await raw_head(stack.api_url, path)

        assert (status, body) == (200, b""), path
        if path in STABLE:
            assert described(headers) == described(get.headers), path
        else:
            assert headers.get("content-type") == get.headers["content-type"], path


async def test_head_adds_no_operation_to_the_openapi_document(stack: Stack) -> None:
    status, _, _ = await raw_head(stack.api_url, "/api/config")
    assert status == 200  # HEAD is answered...
    paths = (await stack.http.get(f"{stack.api_url}/openapi.json")).json()["paths"]
    # ...yet the document names each operation once, as declared.
    assert {path: sorted(item) for path, item in paths.items()} == {
        "/api/config": ["get"],
        "/api/orders": ["get", "post"],
        "/api/orders/execute": ["post"],
        "/api/orders/{order_id}": ["get"],
        "/api/quote": ["get"],
        "/api/tokens": ["get"],
        "/api/venues": ["get"],
        "/healthz": ["get"],
        "/readyz": ["get"],
    }


async def test_head_where_only_post_is_taken_is_the_json_405(stack: Stack) -> None:
    """`/api/orders/execute` takes only POST (it is no order id), `/api/orders` GET and POST."""
    get = await stack.http.get(f"{stack.api_url}/api/orders/execute")
    assert get.status_code == 405 and get.json()["error"]["code"] == "HTTP_405"

    status, headers, body = await raw_head(stack.api_url, "/api/orders/execute")

    assert (status, body) == (405, b"")
    assert headers["allow"] == "POST"
    assert described(headers) == described(get.headers)  # the JSON error, its body not sent
    status, headers, body = await raw_head(stack.api_url, "/api/orders")
    assert (status, body) == (200, b"")


async def test_head_needs_the_api_key_get_needs(start) -> None:
    stack: Stack = await start(
        api_keys_enabled=True,
        api_keys={"alice": hash_api_key(ALICE), "bob": hash_api_key(BOB)},
    )
    order_id = await confirmed_and_recorded(stack, **{"X-API-Key": ALICE})
    path = f"/api/orders/{order_id}"

    status, headers, body = await raw_head(stack.api_url, path)
    assert (status, body) == (401, b"")
    assert headers["www-authenticate"].startswith("Bearer ")
    status, _, _ = await raw_head(stack.api_url, "/api/orders", {"X-API-Key": "guess"})
    assert status == 401
    status, _, _ = await raw_head(stack.api_url, path, {"X-API-Key": BOB})
    assert status == 404  # another tenant's order does not exist for Bob
    status, _, body = await raw_head(stack.api_url, path, {"Authorization": f"Bearer {ALICE}"})
    assert (status, body) == (200, b"")


async def test_head_draws_on_the_rate_limit_as_get_does(start) -> None:
    stack: Stack = await start(rate_limit_per_second=0.001, rate_limit_burst=1)

    first, _, _ = await raw_head(stack.api_url, "/api/tokens")
    second, headers, body = await raw_head(stack.api_url, "/api/tokens")
    get = await stack.http.get(f"{stack.api_url}/api/tokens")

    assert (first, second, body) == (200, 429, b"")
    assert int(headers["retry-after"]) >= 1
    assert get.status_code == 429 and get.json()["error"]["code"] == "RATE_LIMITED"
