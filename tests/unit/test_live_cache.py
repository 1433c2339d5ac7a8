"""The live hub's backfill cache: complete histories only, bounded, and cleared on a gap."""

from __future__ import annotations

from nats.aio.msg import Msg

from dexec.orders.events import OrderEvent
from dexec.orders.states import FIRST_TRY_EVENTS, with_statuses
from dexec_notifier.client_events import ClientEvent
from dexec_notifier.live import BackfillCache, LiveHub, Watcher

LIFECYCLE = with_statuses(FIRST_TRY_EVENTS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Feed:
    """Messages as the ordered consumer delivers them: stream and consumer sequences."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.consumer = "c1"
        self.stream_seq = 0
        self.consumer_seq = 0

    async def send(self, order_id: str, step: int, tenant: str | None = None) -> int:
        event, status = LIFECYCLE[step]
        data = {"tenant": tenant} if tenant else {}
        raw = OrderEvent(order_id=order_id, event=event, status=status, data=data).to_json()
        self.stream_seq += 1
        self.consumer_seq += 1
        reply = (
            f"$JS.ACK.ORDERS.{self.consumer}.1.{self.stream_seq}.{self.consumer_seq}"
            f".1763712000000000000.0"
        )
        subject = f"orders.{event}.{order_id}"
        await self.hub._on_msg(Msg(None, subject=subject, reply=reply, data=raw))  # type: ignore[arg-type]
        return self.stream_seq

    def skip(self, messages: int) -> None:
        """Messages the stream has but the hub never receives."""
        self.stream_seq += messages
        self.consumer_seq += messages

    def reset(self, resume_at: int) -> None:
        """nats-py recreated the ordered consumer at stream sequence `resume_at`."""
        self.consumer = f"c{int(self.consumer[1:]) + 1}"
        self.consumer_seq = 0
        self.stream_seq = resume_at - 1


def seqs(hub: LiveHub, order_id: str) -> list[int] | None:
    history = hub.watch(order_id, Watcher(10))
    return None if history is None else [stored.seq for stored in history]


async def test_an_entry_starts_at_pending_and_holds_every_later_event() -> None:
    hub = LiveHub()
    feed = Feed(hub)
    await feed.send("late", 1)  # its pending came before the hub started
    sent = [await feed.send("a", step) for step in range(3)]
    await feed.send("late", 2)

    assert seqs(hub, "a") == sent
    assert seqs(hub, "late") is None
    assert "late" not in hub.cache


async def test_watch_registers_so_the_next_event_goes_to_the_watcher() -> None:
    hub = LiveHub()
    feed = Feed(hub)
    await feed.send("a", 0, tenant="t1")
    watcher = Watcher(10)
    history = hub.watch("a", watcher)
    assert history is not None
    assert history[0].tenant == "t1"  # tenancy is decided from cached data
    nxt = await feed.send("a", 1)
    assert [event.seq for event in await watcher.next()] == [nxt]


async def test_a_gap_in_delivery_clears_the_cache() -> None:
    hub = LiveHub()
    feed = Feed(hub)
    await feed.send("a", 0)
    feed.skip(1)  # dropped by the client: same consumer, consumer sequence jumps
    await feed.send("b", 0)
    assert "a" not in hub.cache
    assert seqs(hub, "b") is not None  # a pending after the gap starts a complete entry


async def test_a_reset_that_resumes_right_after_the_last_message_keeps_the_cache() -> None:
    hub = LiveHub()
    feed = Feed(hub)
    first = await feed.send("a", 0)
    feed.reset(resume_at=first + 1)
    second = await feed.send("a", 1)
    assert seqs(hub, "a") == [first, second]


async def test_a_reset_that_resumes_further_on_clears_the_cache() -> None:
    hub = LiveHub()
    feed = Feed(hub)
    first = await feed.send("a", 0)
    feed.reset(resume_at=first + 2)  # the message at first + 1 was never delivered here
    await feed.send("a", 1)
    assert "a" not in hub.cache


async def test_a_recreated_stream_clears_the_cache() -> None:
    hub = LiveHub()
    feed = Feed(hub)
    await feed.send("a", 0)
    await feed.send("a", 1)
    feed.reset(resume_at=1)
    await feed.send("a", 2)
    assert "a" not in hub.cache


async def test_an_order_leaves_the_cache_a_while_after_its_end() -> None:
    clock = Clock()
    hub = LiveHub(cache_ttl_after_terminal=5.0, clock=clock)
    feed = Feed(hub)
    for step in range(len(LIFECYCLE)):
        await feed.send("a", step)
    await feed.send("b", 0)
    clock.now += 4.9
    assert seqs(hub, "a") is not None
    clock.now += 0.2
    assert seqs(hub, "a") is None
    assert seqs(hub, "b") is not None
    assert hub.cache.bytes == hub.cache._entries["b"].size


async def test_the_byte_cap_evicts_the_oldest_orders_first() -> None:
    probe = LiveHub()
    await Feed(probe).send("x", 0)
    one_order = probe.cache.bytes  # an order with only its pending event

    hub = LiveHub(cache_max_bytes=3 * one_order)
    feed = Feed(hub)
    for order_id in "abc":
        await feed.send(order_id, 0)
    assert len(hub.cache) == 3
    await feed.send("d", 0)
    assert [o for o in "abcd" if o in hub.cache] == ["b", "c", "d"]
    await feed.send("b", 1)  # b grows: the oldest (b itself) goes
    assert [o for o in "abcd" if o in hub.cache] == ["c", "d"]
    assert hub.cache.bytes <= 3 * one_order
    await feed.send("b", 2)  # an evicted order does not come back mid-history
    assert "b" not in hub.cache


async def test_a_zero_byte_cap_turns_the_cache_off() -> None:
    hub = LiveHub(cache_max_bytes=0)
    await Feed(hub).send("a", 0)
    assert seqs(hub, "a") is None
    assert hub.cache.bytes == 0


def test_cache_history_is_a_copy() -> None:
    cache = BackfillCache(10_000, 1.0)
    cache.record("a", "pending", 1, b"{}")
    history = cache.history("a")
    assert history is not None
    history.append((2, b"{}"))
    assert cache.history("a") == [(1, b"{}")]


async def test_a_watcher_hands_out_what_is_queued_behind_the_next_event_up_to_a_limit() -> None:
    watcher = Watcher(10)
    for seq in range(1, 6):
        watcher.offer(ClientEvent(seq, "a", False, None, "{}"))
    assert [event.seq for event in await watcher.next(3)] == [1, 2, 3]
    assert [event.seq for event in await watcher.next(3)] == [4, 5]
