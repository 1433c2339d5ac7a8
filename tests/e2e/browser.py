"""Headless Chromium for the browser tests: Debian's `chromium`, launched by Playwright.

Playwright cannot download its own browser here (no internet), so it drives the system one by
its executable path, with everything that would reach the network switched off.
"""

from __future__ import annotations

import os
from typing import Any

CHROMIUM_PATH = os.environ.get("DEXEC_CHROMIUM", "/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch_chromium(playwright: Any, executable_path: str = CHROMIUM_PATH) -> Any:
    """A headless browser (a fresh profile each launch) from an `async_playwright()` handle."""
    return await playwright.chromium.launch(
        executable_path=executable_path, headless=True, args=CHROMIUM_ARGS
    )
