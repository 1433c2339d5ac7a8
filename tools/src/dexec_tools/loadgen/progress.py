"""The live progress bar: accepted and completed orders, read from the workers' counters."""

from __future__ import annotations

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        # disable=None: tqdm turns itself off when stderr is not a terminal (CI, pipes).
        disable = None if enabled else True
        common = {"total": total, "unit": " orders", "disable": disable, "dynamic_ncols": True}
        self._accepted = tqdm(desc="accepted ", position=0, **common)
        self._completed = tqdm(desc="completed", position=1, **common)

    def start(self) -> None:
        """The run starts now: the bars' clocks and rates leave out the workers' start-up."""
        self._accepted.reset()
        self._completed.reset()

    def update(self, accepted: int, completed: int) -> None:
        # update() by the difference, so tqdm's rate column shows orders/s.
        self._accepted.update(accepted - self._accepted.n)
        self._completed.update(completed - self._completed.n)

    def close(self) -> None:
        self._completed.close()
        self._accepted.close()
