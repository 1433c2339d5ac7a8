"""Expiry is settled on the chain: a transaction either lands or is recorded as never landed.

Each chain here reads a clock the test sets, so "the blockhash has expired" is a step of the
test rather than a wait; the bucket is the real one, on real NATS.
"""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from dexec.market import chain as chain_module
from dexec.market.chain import (
    BlockhashExpired,
    NeverLanded,
    SignedSwap,
    SimulatedChain,
    SlotClock,
    decode_record,
)
from dexec.market.market import Market
from dexec.market.routing import find_route
from dexec.market.tokens import resolve_token
from dexec.settings import ChainSettings
from tests.support.chain import FirstCreateHeld, landed_outcomes

SLOT = 4_400_000_000
LAST_VALID = SLOT + 5
SETTINGS = ChainSettings(latency_mode="zero")


class SetClock(SlotClock):
    """A slot clock that stays where the test puts it."""

    def __init__(self, slot: int) -> None:
        super().__init__(SETTINGS.slot_ms)
        self.slot = slot

    def now(self) -> int:
        return self.slot

    def seconds_until(self, slot: int) -> float:
        return max(0.0, (slot - self.slot) * self.slot_ms / 1000)


async def open_chain(js: JetStreamContext, slot: int = SLOT) -> SimulatedChain:
    chain = await SimulatedChain.open(js, Market.from_settings(SETTINGS), SETTINGS)
    chain.clock = SetClock(slot)
    return chain


def swap(order_id: str) -> SignedSwap:
    market = Market.from_settings(SETTINGS)
    route = find_route(
        market.view(SLOT),
        resolve_token("SOL"),
        resolve_token("USDC"),
        2 * 10**9,
        300,
        priority_fee_lamports=SETTINGS.priority_fee_lamports,
    )
    return SimulatedChain.resign(order_id, route, "blockhash", LAST_VALID)


async def test_a_send_that_arrives_after_expiry_was_settled_does_not_land(
    js: JetStreamContext, nats_url: str
) -> None:
    chain = await open_chain(js)
    try:
        late = FirstCreateHeld(chain._kv)
        chain._kv = late  # type: ignore[assignment]
        tx = swap("order-marker-wins")
        # The send passes its expiry check while the blockhash is valid; its write is held.
        sending = asyncio.create_task(chain.send(tx, attempt=1, fresh=True))
        await late.held.wait()
        chain.clock.slot = LAST_VALID + 1  # type: ignore[attr-defined]

        assert await chain.settle_expired(tx) is None  # recorded: it never landed
        late.release.set()
        assert await sending is None  # the late write found the record taken
        assert isinstance(await late.result, Exception)

        assert await chain.outcome(tx.signature) is None
        record = decode_record((await chain._kv.get(tx.signature)).value or b"")
        assert isinstance(record, NeverLanded)
        assert record.last_valid_block_height == LAST_VALID
        # Settling again finds the same record; a resend and a waiter both see the expiry.
        assert await chain.settle_expired(tx) is None
        with pytest.raises(BlockhashExpired):
            await chain.send(tx, attempt=2)
        with pytest.raises(BlockhashExpired):
            await chain.wait_confirmed(tx)
        assert not [o for o in await landed_outcomes(nats_url) if o.order_id == tx.order_id]
    finally:
        late.release.set()
        await chain.close()


async def test_a_landing_that_wins_the_race_is_what_settling_returns(
    js: JetStreamContext, nats_url: str
) -> None:
    chain = await open_chain(js)
    try:
        tx = swap("order-landing-wins")
        landed = await chain.send(tx, attempt=1, fresh=True)
        assert landed is not None
        chain.clock.slot = LAST_VALID + 1  # type: ignore[attr-defined]

        # Expired by the clock, but it landed at the last moment: that outcome stands.
        assert await chain.settle_expired(tx) == landed
        assert await chain.outcome(tx.signature) == landed
        assert await chain.wait_confirmed(tx) == landed
        landed_here = [o for o in await landed_outcomes(nats_url) if o.order_id == tx.order_id]
        assert landed_here == [landed]
    finally:
        await chain.close()


async def test_a_waiter_is_told_its_transaction_never_landed(
    js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the push can end this wait: the waiter does not read the chain again on its own
    # for ten minutes, and its clock (behind the settler's) keeps the blockhash valid longer.
    monkeypatch.setattr(chain_module, "LANDING_RECHECK_SECONDS", 600.0)
    waiter = await open_chain(js, slot=SLOT - 10_000)
    settler = await open_chain(js, slot=LAST_VALID + 1)
    try:
        tx = swap("order-waiter-told")
        looked = asyncio.Event()
        read = waiter._kv.get

        async def get_then_signal(key: str) -> object:
            try:
                return await read(key)
            finally:
                looked.set()

        waiter._kv.get = get_then_signal  # type: ignore[method-assign]
        waiting = asyncio.create_task(waiter.wait_confirmed(tx))
        await looked.wait()  # registered and read: nothing recorded yet

        assert await settler.settle_expired(tx) is None
        with pytest.raises(BlockhashExpired):
            await asyncio.wait_for(waiting, 30)
    finally:
        await waiter.close()
        await settler.close()
