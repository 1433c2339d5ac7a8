"""The seeded price path: token prices and each pool's drift away from them, over slots.

Each path is a sum of octaves of value noise: an octave puts a seeded value in
[-amplitude, +amplitude] on every `period` slots and interpolates linearly in between. Slow
octaves with large amplitudes move prices by percents over minutes and hours; fast ones with
small amplitudes make the price at execution differ a little from the price at the quote. An
octave's steepest move is `2·amplitude/period` per slot, so the market file's octaves bound how
far a price can go between a quote and its execution two or three slots later.

Everything is an integer function of (seed, key, slot): any process computes the same price
for the same slot without talking to the others, and the same seed gives the same market.
Offsets are in parts per million (ppm) of the price.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PPM = 1_000_000


def seeded_int(seed: int, *parts: object, low: int, high: int) -> int:
    """A uniform integer in [low, high], a pure function of the seed and the parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return low + int.from_bytes(digest, "big") % (high - low + 1)


@dataclass(frozen=True)
class Octave:
    period_slots: int
    amplitude_ppm: int


def noise_ppm(seed: int, key: str, octaves: tuple[Octave, ...], slot: int) -> int:
    """The path `key` at `slot`: the sum of its octaves, in ppm."""
    total = 0
    for octave in octaves:
        if octave.amplitude_ppm == 0:
            continue
        knot, offset = divmod(slot, octave.period_slots)
        span = (-octave.amplitude_ppm, octave.amplitude_ppm)
        here = seeded_int(seed, key, octave.period_slots, knot, low=span[0], high=span[1])
        there = seeded_int(seed, key, octave.period_slots, knot + 1, low=span[0], high=span[1])
        total += (here * (octave.period_slots - offset) + there * offset) // octave.period_slots
    return total


def scaled(octaves: tuple[Octave, ...], numerator: int, denominator: int) -> tuple[Octave, ...]:
    """The octaves with amplitudes multiplied by `numerator/denominator` (a volatility)."""
    return tuple(
        Octave(o.period_slots, o.amplitude_ppm * numerator // denominator) for o in octaves
    )


def max_move_ppm(octaves: tuple[Octave, ...], slots: int) -> int:
    """An upper bound on how far the path can move in `slots` slots.

    Each octave's slope is at most `2·amplitude/period` per slot; the floor of the
    interpolation adds at most one more ppm.
    """
    return sum(-(-2 * o.amplitude_ppm * slots // o.period_slots) + 1 for o in octaves)
