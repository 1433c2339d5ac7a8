"""Splitting one hop's input across pools: greedy allocation on a grid of equal chunks.

Every pool's output is concave in its input (a constant-product curve, or DLMM bins at ever
worse prices and fees), so handing out the input one chunk at a time, each to the pool whose
output grows most from it, finds the best allocation on the grid. It quotes each pool once per
chunk it receives plus once per round for the others' next chunk, all memoised: about
`chunks + pools` swaps, instead of the `chunks^pools` of a full grid search.

A leg costs compute units, so the first chunk a pool receives carries that leg's network fee
(in the hop's output token): a split is only chosen when it beats its extra fees.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from dexec.market.pool_model import PoolState
from dexec.market.pools import InsufficientLiquidity, SwapResult
from dexec.market.tokens import Token

# A route program's transaction has room for a few legs per hop, as Jupiter's.
MAX_SPLIT_LEGS = 4


@dataclass(frozen=True)
class Part:
    state: PoolState
    result: SwapResult
    percent: int


@dataclass(frozen=True)
class Allocation:
    parts: tuple[Part, ...]

    @property
    def amount_in(self) -> int:
        return sum(p.result.amount_in for p in self.parts)

    @cached_property
    def amount_out(self) -> int:
        return sum(p.result.amount_out for p in self.parts)

    def net_of(self, leg_costs: dict[str, int]) -> int:
        """Output less the legs' network costs (in the output token)."""
        return self.amount_out - sum(leg_costs[p.state.pool.address] for p in self.parts)


class _Grid:
    """One pool's swap results at the grid's points, quoted on first use."""

    def __init__(self, state: PoolState, token_in: Token, amount: int, chunks: int) -> None:
        self.state = state
        self._token_in = token_in
        self._amount = amount
        self._chunks = chunks
        self._results: dict[int, SwapResult | None] = {}

    def amount_at(self, k: int) -> int:
        return self._amount * k // self._chunks

    def result(self, k: int) -> SwapResult | None:
        """The swap of k chunks; None when the pool cannot take them."""
        if k not in self._results:
            amount = self.amount_at(k)
            try:
                self._results[k] = self.state.swap(self._token_in, amount) if amount else None
            except InsufficientLiquidity:
                self._results[k] = None
        return self._results[k]

    def out(self, k: int) -> int | None:
        if k == 0:
            return 0
        result = self.result(k)
        return None if result is None else result.amount_out


def hop_options(
    states: list[PoolState],
    token_in: Token,
    amount: int,
    leg_costs: dict[str, int],
    chunks: int = 20,
) -> list[Allocation]:
    """Each pool alone (where it can fill the whole amount), then the best split if it splits."""
    grids = [_Grid(state, token_in, amount, chunks) for state in states]
    options = []
    singles: dict[int, Allocation] = {}
    for i, grid in enumerate(grids):
        whole = grid.result(chunks)
        if whole is not None and whole.amount_out > 0:
            singles[i] = Allocation((Part(grid.state, whole, 100),))
            options.append(singles[i])
    if len(grids) < 2:
        return options
    costs = [leg_costs[grid.state.pool.address] for grid in grids]
    best = max(singles, key=lambda i: singles[i].net_of(leg_costs), default=None)
    if best is not None and _one_pool_takes_all(grids, costs, chunks, best):
        return options
    split = _greedy_split(grids, token_in, amount, costs, chunks)
    if split is None or len(split.parts) < 2:
        return options
    if best is None or split.net_of(leg_costs) > singles[best].net_of(leg_costs):
        options.append(split)
    return options


def _one_pool_takes_all(grids: list[_Grid], costs: list[int], chunks: int, best: int) -> bool:
    """Whether the greedy split would hand every chunk to pool `best` anyway.

    Outputs are concave, so `best`'s gains only shrink: if its last chunk still adds at least
    as much as any other pool's first chunk (net of that leg's cost), no other pool ever wins a
    round. Most orders are small next to the pools, and this check costs one swap per pool
    instead of the greedy's one per chunk.
    """
    whole, all_but_one = grids[best].out(chunks), grids[best].out(chunks - 1)
    if whole is None or all_but_one is None:
        return False
    last_gain = whole - all_but_one
    for i, grid in enumerate(grids):
        first = grid.out(1)
        if i != best and first is not None and first - costs[i] >= last_gain:
            return False
    return True


def _greedy_split(
    grids: list[_Grid], token_in: Token, amount: int, costs: list[int], chunks: int
) -> Allocation | None:
    counts = [0] * len(grids)

    def gain(i: int) -> int | None:
        """What pool i's next chunk adds (less its leg's cost if it opens the leg)."""
        after, before = grids[i].out(counts[i] + 1), grids[i].out(counts[i])
        if after is None or before is None:
            return None
        return after - before - (costs[i] if counts[i] == 0 else 0)

    # Only the pool that took the last chunk has a new next gain: one swap per round.
    gains = [gain(i) for i in range(len(grids))]
    legs = 0
    for _ in range(chunks):
        best: int | None = None
        best_gain = 0
        for i, g in enumerate(gains):
            if g is None or (counts[i] == 0 and legs >= MAX_SPLIT_LEGS):
                continue
            if best is None or g > best_gain:
                best, best_gain = i, g
        if best is None:
            return None  # together the pools cannot take the whole amount
        legs += counts[best] == 0
        counts[best] += 1
        gains[best] = gain(best)
    return _allocation(grids, token_in, amount, counts, chunks)


def _allocation(
    grids: list[_Grid], token_in: Token, amount: int, counts: list[int], chunks: int
) -> Allocation | None:
    """The exact parts for chunk counts: grid amounts, the rounding rest to the largest part."""
    used = [i for i, count in enumerate(counts) if count]
    amounts = {i: grids[i].amount_at(counts[i]) for i in used}
    largest = max(used, key=lambda i: counts[i])
    amounts[largest] += amount - sum(amounts.values())
    parts = []
    for i in used:
        grid = grids[i]
        if amounts[i] == grid.amount_at(counts[i]):
            result = grid.result(counts[i])
        else:
            try:
                result = grid.state.swap(token_in, amounts[i])
            except InsufficientLiquidity:
                result = None
        if result is None:
            return None
        parts.append(Part(grid.state, result, counts[i] * 100 // chunks))
    return Allocation(tuple(parts))
