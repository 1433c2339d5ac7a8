"""The `helm test` script (charts/dexec/files/smoke.py) run against the four real services, as
the test pod runs it against a release: it must see an order through to `confirmed`."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.deploy.manifests import CHART
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


async def test_the_helm_test_script_sees_an_order_confirmed(stack: Stack) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHART / "files" / "smoke.py"),
        env={
            **os.environ,
            "API_URL": stack.api_url,
            "NOTIFIER_URL": stack.ws_url,
            "TIMEOUT_SECONDS": "60",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 90)
    except TimeoutError:
        process.kill()  # a single process: nothing of it outlives the test
        await process.wait()
        raise
    lines = output.decode().splitlines()
    assert process.returncode == 0, "\n".join(lines)
    assert lines[0].startswith("submitted order ")
    events = [line.split()[1] for line in lines[1:-1]]
    assert events[0] == "pending"
    assert events[-1] == "confirmed"
    assert lines[-1] == "confirmed"
