"""Garbage-collector settings for a long-running service process.

CPython's cycle collector runs a young-generation pass every 700 net allocations of container
objects, and a full pass walks every object alive, including the 55,000 to 110,000 that FastAPI,
pydantic, SQLAlchemy and OpenTelemetry leave after import (70 ms a pass for the API when idle).
Measured under load (BENCHMARKS.md), each service spent 1.5 to 1.9 s in the collector (by the
wall clock) during 3,000 orders, and single full passes stalled its event loop for up to 330 ms.
Freezing the start-up heap takes it out of every later pass, and a larger young generation
makes passes rarer; garbage without cycles is still freed at once by reference counting.
"""

from __future__ import annotations

import gc

# Net container allocations between young passes (CPython's default: 700), and how many
# passes of each generation trigger one of the next (defaults: 10, 10).
YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 20


def settle_startup_heap() -> None:
    """Collect what start-up left behind, then exempt the survivors from future passes.

    Call once the service's modules are imported, before it starts serving. Not for test
    processes: a frozen object is never examined again, so a frozen cycle is never freed.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
