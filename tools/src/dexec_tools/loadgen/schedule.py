"""What each order says, and when it is sent."""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from dexec_tools.loadgen.config import RunConfig

BPS = 10_000


def idempotency_key(run_id: str, index: int) -> str:
    return f"{run_id}-{index}"


class Amounts:
    """Each order's amount: the base amount varied by up to ±jitter_bps, exactly, in decimals.

    The variation makes every order's idempotency fingerprint its own (a replayed key must
    match its original order, a new key need not, but identical bodies would hide a server
    that mixed orders up). The step is 10^-decimals so the amount stays valid for the token.
    """

    def __init__(self, amount: str, decimals: int, jitter_bps: int, rng: random.Random) -> None:
        try:
            self._base = Decimal(amount)
        except InvalidOperation:
            self._base = Decimal(0)
        if not self._base.is_finite() or self._base <= 0:
            raise ValueError(f"the amount must be a positive decimal, not {amount!r}")
        self._step = Decimal(1).scaleb(-decimals)
        self._span = int(self._base * jitter_bps / BPS / self._step)  # whole steps either side
        self._rng = rng

    def next(self) -> str:
        if self._span == 0:
            return _plain(self._base)
        value = self._base + self._rng.randint(-self._span, self._span) * self._step
        return _plain(value if value > 0 else self._base)


def _plain(value: Decimal) -> str:
    """Fixed-point text without trailing zeros ("1.5", never "1.500000" or "1.5E+0")."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def order_body(config: RunConfig, amount: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "market",
        "tokenIn": config.token_in,
        "tokenOut": config.token_out,
        "amount": amount,
    }
    if config.slippage_bps is not None:
        body["slippageBps"] = config.slippage_bps
    return body


class Pacer:
    """An open-loop schedule: the k-th order is due at start + k / rate, whatever came before.

    A slow answer therefore does not push later orders back; a sender that fell behind
    catches up at once. But a send can still start late (all `concurrency` slots taken), so
    `due_at` gives each order's scheduled time, from which the report measures the latency a
    client keeping that rate would see (no coordinated omission). Rate 0 means no pacing.
    """

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._start_wall = time.time()

    def due_at(self, k: int) -> float | None:
        """When the k-th order is due, by the wall clock (None: unpaced, it is never late)."""
        return self._start_wall + k / self._rate if self._rate > 0 else None

    async def wait_turn(self, k: int) -> None:
        if self._rate <= 0:
            return
        delay = self._start + k / self._rate - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
