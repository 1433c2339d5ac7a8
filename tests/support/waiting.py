"""Waiting for a condition with a deadline (never a bare sleep used as synchronisation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float = 20.0,
    what: str = "condition",
    explain: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds.

    `explain`, if given, describes the state at the deadline for the failure message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f": {await explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        await asyncio.sleep(0.05)
