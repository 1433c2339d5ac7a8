"""The services' event loop: uvloop, with tasks that start at once where Python allows it."""

from __future__ import annotations

import asyncio
import sys

import uvloop

from dexec.runtime import new_event_loop


def first_steps() -> list[str]:
    """What ran, in order, when a task was created and the creator went on."""
    steps: list[str] = []

    async def child() -> None:
        steps.append("child started")
        await asyncio.sleep(0)
        steps.append("child resumed")

    async def parent() -> None:
        task = asyncio.get_running_loop().create_task(child())
        steps.append("create_task returned")
        await task

    loop = new_event_loop()
    try:
        loop.run_until_complete(parent())
    finally:
        loop.close()
    return steps


def test_the_loop_is_uvloop() -> None:
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_a_task_runs_up_to_its_first_suspension_before_create_task_returns() -> None:
    if sys.version_info >= (3, 12):
        expected = ["child started", "create_task returned", "child resumed"]
    else:  # no eager tasks before 3.12: the task waits for the loop's next turn
        expected = ["create_task returned", "child started", "child resumed"]
    assert first_steps() == expected
