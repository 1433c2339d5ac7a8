"""`helm test`: submit one order through the api, watch it reach `confirmed` on the notifier's
WebSocket, then read it back from the api (which serves what the recorder has written so far).

Runs in the api image (the standard library and `websockets`, which every dexec image has).
tests/deploy runs it against a local stack too. Settings: API_URL, NOTIFIER_URL (ws://...),
TIMEOUT_SECONDS, and API_KEYS (`keys.json` of the chart's Secret: {tenant: key}) when API keys
are on: the order is placed with one tenant's key.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid

from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

# Generous slippage: this checks the plumbing, and the simulated price may rightly drift more
# than the default 50 bps between quote and execution.
ORDER = {
    "type": "market",
    "tokenIn": "SOL",
    "tokenOut": "USDC",
    "amount": "0.1",
    "slippageBps": 300,
}
TERMINAL = ("confirmed", "failed")


def request(url: str, headers: dict[str, str], body: dict[str, object] | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as reply:
        return json.load(reply)


def watch(url: str, headers: dict[str, str], deadline: float) -> str | None:
    """Print every event of the order until the notifier closes the socket; the last status."""
    status = None
    with connect(url, additional_headers=headers, open_timeout=30) as socket:
        try:
            while True:
                event = json.loads(socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
                print(f"{event['seq']:>3} {event['event']:<10} {event['status']}", flush=True)
                status = event["status"]
        except ConnectionClosedOK:
            return status


def recorded_status(url: str, headers: dict[str, str], deadline: float) -> str:
    """The order's status from the api once the recorder has caught up with the stream."""
    while True:
        status = request(url, headers)["status"]
        if status in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def main() -> int:
    api, notifier = os.environ["API_URL"], os.environ["NOTIFIER_URL"]
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "120"))
    headers = {"content-type": "application/json"}
    if keys := os.environ.get("API_KEYS"):
        headers["x-api-key"] = next(iter(json.loads(keys).values()))

    submit = {**headers, "idempotency-key": f"helm-test-{uuid.uuid4()}"}
    order_id = request(f"{api}/api/orders/execute", submit, ORDER)["orderId"]
    print(f"submitted order {order_id}", flush=True)

    streamed = watch(f"{notifier}/ws/orders/{order_id}", headers, deadline)
    stored = recorded_status(f"{api}/api/orders/{order_id}", headers, deadline)
    if streamed == stored == "confirmed":
        print("confirmed", flush=True)
        return 0
    print(f"expected confirmed, got {streamed} on the socket and {stored} from the api")
    return 1


if __name__ == "__main__":
    sys.exit(main())
