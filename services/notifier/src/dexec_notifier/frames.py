"""Batched frames (`?batch=true`): the events ready at once, as JSON arrays of bounded size.

A subscription of many orders brings all their backfills at once (1,000 orders are ~6 MB);
in one frame that is over the frame limit of common clients (1 MiB in the `websockets`
library), which then close the socket (1009) and, reconnecting, ask for it all again.
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_EVENTS_PER_FRAME = 256
# Half of the common 1 MiB limit: a frame ends before it would pass this (only an event larger
# than this on its own makes a larger frame).
MAX_FRAME_BYTES = 512 * 1024


def batched_frames(texts: list[str]) -> Iterator[str]:
    """The events' JSON texts as arrays, in order, each within both limits."""
    start, size = 0, 2  # the brackets
    for i, text in enumerate(texts):
        # isascii() is O(1) in CPython; events are nearly always ASCII.
        length = (len(text) if text.isascii() else len(text.encode())) + 1  # and a comma
        if i > start and (i - start == MAX_EVENTS_PER_FRAME or size + length > MAX_FRAME_BYTES):
            yield f"[{','.join(texts[start:i])}]"
            start, size = i, 2
        size += length
    if start < len(texts):
        yield f"[{','.join(texts[start:])}]"
