"""Batched WebSocket frames stay within a client's frame limit, events in order."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from dexec_notifier.frames import MAX_EVENTS_PER_FRAME, MAX_FRAME_BYTES, batched_frames
from dexec_tools.loadgen.follow import MAX_FRAME_BYTES as LOADGEN_MAX_FRAME_BYTES
from dexec_tools.loadgen.follow import SOCKET_CAPACITY


def event(n: int, padding: int = 0) -> str:
    return orjson.dumps({"seq": n, "data": "x" * padding}).decode()


def test_many_small_events_are_split_by_count() -> None:
    texts = [event(n) for n in range(2 * MAX_EVENTS_PER_FRAME + 1)]

    frames = [orjson.loads(f) for f in batched_frames(texts)]

    assert [len(f) for f in frames] == [MAX_EVENTS_PER_FRAME, MAX_EVENTS_PER_FRAME, 1]
    assert [e["seq"] for f in frames for e in f] == list(range(len(texts)))


def test_large_events_are_split_by_bytes() -> None:
    texts = [event(n, padding=100_000) for n in range(12)]  # ~1.2 MB in all

    frames = list(batched_frames(texts))

    assert len(frames) > 1
    assert all(len(f.encode()) <= MAX_FRAME_BYTES for f in frames)
    assert [e["seq"] for f in frames for e in orjson.loads(f)] == list(range(12))


def test_bytes_count_what_is_sent_not_characters() -> None:
    texts = [orjson.dumps({"seq": n, "data": "é" * 100_000}).decode() for n in range(4)]

    assert all(len(f.encode()) <= MAX_FRAME_BYTES for f in batched_frames(texts))


def test_an_event_over_the_limit_alone_is_a_frame_of_its_own() -> None:
    texts = [event(0), event(1, padding=MAX_FRAME_BYTES), event(2)]

    assert [len(orjson.loads(f)) for f in batched_frames(texts)] == [1, 1, 1]


@given(st.lists(st.integers(min_value=0, max_value=3_000), max_size=600))
def test_frames_hold_every_event_once_in_order(paddings: list[int]) -> None:
    texts = [event(n, padding) for n, padding in enumerate(paddings)]

    frames = [orjson.loads(f) for f in batched_frames(texts)]

    assert [e["seq"] for f in frames for e in f] == list(range(len(texts)))
    assert all(0 < len(f) <= MAX_EVENTS_PER_FRAME for f in frames)


def test_the_load_generators_resubscription_comes_in_frames_it_accepts() -> None:
    # A reconnected socket resubscribes SOCKET_CAPACITY orders at once: all their backfills in
    # one go (~7 events of up to ~2 KB each), which must not close it with 1009 (and again on
    # every retry).
    texts = [event(n, padding=2_000) for n in range(SOCKET_CAPACITY * 7)]

    assert max(len(f.encode()) for f in batched_frames(texts)) <= LOADGEN_MAX_FRAME_BYTES
