import hashlib
import hmac
import time

from dexec.webhook_signature import sign, verify


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    expected = hmac.new(b"s", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("s", 1700000000, b"{}") == f"v1={expected}"


def test_receivers_accept_fresh_genuine_requests_only() -> None:
    now = int(time.time())
    body = b'{"event":"confirmed"}'
    genuine = sign("secret", now, body)
    assert verify("secret", str(now), body, genuine)
    assert not verify("other", str(now), body, genuine)
    assert not verify("secret", str(now), body + b" ", genuine)
    old = now - 3600
    assert not verify("secret", str(old), body, sign("secret", old, body))
    future = now + 3600  # a clock far ahead is as stale as one far behind
    assert not verify("secret", str(future), body, sign("secret", future, body))
    within = now - 200  # inside the default 300 s tolerance
    assert verify("secret", str(within), body, sign("secret", within, body))
    assert not verify("secret", "soon", body, genuine)
