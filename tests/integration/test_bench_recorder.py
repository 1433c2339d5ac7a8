"""The recorder micro-benchmark's batches: a saturated engine's shape, and recordable."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from dexec.db.engine import create_engine
from dexec.db.models import OrderEventRow, OrderRow
from dexec_notifier.recorder import record_batch
from dexec_tools.bench_recorder import WAVE, batches

ORDERS = 7 * WAVE  # more waves than stages, so some batches hold every stage
LIFECYCLE = ["pending", "routing", "routed", "building", "submitted", "confirmed"]


def test_each_event_of_an_order_comes_in_a_later_batch_than_the_one_before() -> None:
    work = batches(ORDERS)
    seen: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for number, batch in enumerate(work):
        for recorded in batch:
            seen[recorded.event.order_id].append((number, str(recorded.event.event)))
    assert len(seen) == ORDERS
    for placed in seen.values():
        assert [event for _, event in placed] == LIFECYCLE
        numbers = [number for number, _ in placed]
        assert numbers == sorted(set(numbers))  # one event per batch, in order
    # Batches in the middle mix every stage: new orders beside finished ones.
    assert {str(r.event.event) for r in work[len(LIFECYCLE) - 1]} == set(LIFECYCLE)


async def test_the_batches_record_every_order_to_its_end(database_url: str) -> None:
    engine = create_engine(database_url, 2)
    try:
        for batch in batches(ORDERS):
            await record_batch(engine, batch)
        async with engine.connect() as conn:
            events = await conn.scalar(select(func.count()).select_from(OrderEventRow))
            statuses = (await conn.execute(select(OrderRow.status))).scalars().all()
    finally:
        await engine.dispose()
    assert events == ORDERS * len(LIFECYCLE)
    assert statuses == ["confirmed"] * ORDERS
