"""The start-up heap is frozen and the collector's thresholds raised, in a service process.

Run in a child interpreter: freezing this test process would keep its garbage forever.
"""

from __future__ import annotations

import json
import subprocess
import sys

from dexec.heap import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD

CHILD = """
import gc, json, weakref
from dexec.heap import settle_startup_heap

class Node:
    pass

# A cycle left over from start-up is collected before the freeze, not frozen with it.
a, b = Node(), Node()
a.other, b.other = b, a
cycle = weakref.ref(a)
del a, b
before = gc.get_freeze_count()
settle_startup_heap()
frozen = gc.get_freeze_count()
print(json.dumps({"before": before, "frozen": frozen, "threshold": gc.get_threshold(),
                  "unfrozen": len(gc.get_objects()), "cycle_freed": cycle() is None}))
"""


def test_settling_freezes_the_startup_heap_and_raises_the_thresholds() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(out.stdout)
    assert result["before"] == 0
    assert result["frozen"] > 1_000  # the imported modules' objects
    assert result["unfrozen"] < result["frozen"] // 10
    assert result["threshold"] == [YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD]
    assert result["cycle_freed"]
