"""The webhook signature: HMAC-SHA256 over `<timestamp>.<body>`, as receivers verify it.

Headers: `X-Dexec-Timestamp: <unix seconds>` and `X-Dexec-Signature: v1=<hex digest>`. The
timestamp is inside the signed text, so a captured request cannot be replayed later with a
fresh timestamp; receivers should also refuse old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Dexec-Timestamp"
SIGNATURE_HEADER = "X-Dexec-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, tolerance_seconds: int = 300
) -> bool:
    """What a receiver runs: the signature matches and the timestamp is recent."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
