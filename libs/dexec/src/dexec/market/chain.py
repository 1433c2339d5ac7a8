"""A simulated Solana chain: slots, blockhashes, fees, failure modes, and idempotent sends.

Its state (signature → outcome) lives in a NATS KV bucket, outside the executor, so a
restarted executor can ask about a signature it sent before, and sending the same signed
transaction twice never executes it twice (the outcome is written with a create).

Expiry is a fact on the chain, not a reading of one process's clock: a send checks the
blockhash against its own clock before its create, and that create may reach NATS late. So
whoever concludes that a transaction expired without landing first records so, with a create
of the same key (`settle_expired`): either the landing or the "never landed" record is
written, never both. It plays the validators' part, which refuse a transaction whose
blockhash is too old when they process it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

import orjson
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from dexec.bus.connection import ensure_key_value
from dexec.bus.subjects import CHAIN_BUCKET
from dexec.market.base58 import b58encode
from dexec.market.landings import Landings
from dexec.market.market import METEORA, RAYDIUM, Market
from dexec.market.pools import BPS
from dexec.market.routing import network_fee_lamports
from dexec.market.tokens import from_base_units, resolve_token
from dexec.orders.events import CamelModel, SwapPlan
from dexec.settings import ChainSettings, LatencyMode

FINALIZED_DEPTH = 32
# A waiter reads its signature's outcome itself this often, besides being told it landed.
LANDING_RECHECK_SECONDS = 2.0
# The error each venue's program returns when the output is under the minimum (simulated).
VENUE_SLIPPAGE_ERRORS = {
    RAYDIUM: "0x1e ExceededSlippage",
    METEORA: "0x1773 ExceededAmountSlippageTolerance",
}


class ChainError(Exception):
    code = "CHAIN_ERROR"
    retryable = False

    def __init__(self, reason: str, details: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}


class RateLimited(ChainError):
    code = "RPC_RATE_LIMITED"
    retryable = True


class BlockhashExpired(ChainError):
    code = "BLOCKHASH_EXPIRED"
    retryable = True


class NodeBehind(ChainError):
    code = "NODE_BEHIND"
    retryable = True


class InsufficientFunds(ChainError):
    code = "INSUFFICIENT_FUNDS"


class SlippageExceeded(ChainError):
    code = "SLIPPAGE_EXCEEDED"


class SlotClock:
    """Slots since the Unix epoch: every process agrees on the slot without talking."""

    def __init__(self, slot_ms: int) -> None:
        self.slot_ms = slot_ms

    def now(self) -> int:
        return time.time_ns() // 1_000_000 // self.slot_ms

    def seconds_until(self, slot: int) -> float:
        return max(0.0, (slot * self.slot_ms - time.time_ns() / 1_000_000) / 1000)


@dataclass(frozen=True)
class SignedSwap:
    order_id: str
    route: SwapPlan
    blockhash: str
    last_valid_block_height: int
    signature: str


class Outcome(CamelModel):
    signature: str
    order_id: str
    slot: int
    ok: bool
    error_code: str | None = None
    error_reason: str | None = None
    venue_error: str | None = None
    in_amount: int
    out_amount: int
    executed_price: Decimal
    fee_lamports: int


class NeverLanded(CamelModel):
    """The chain's record that a transaction's blockhash expired before it landed.

    Written under the transaction's signature, where its outcome would be: a send whose
    create comes later finds the key taken and does not land.
    """

    never_landed: Literal[True] = True
    signature: str
    order_id: str
    last_valid_block_height: int
    # The slot at which it was recorded (past `last_valid_block_height`).
    slot: int


def decode_record(raw: bytes) -> Outcome | NeverLanded:
    """A value of the chain's bucket: a landed transaction's outcome, or `NeverLanded`."""
    record = orjson.loads(raw)
    if record.get("neverLanded"):
        return NeverLanded.model_validate(record)
    return Outcome.model_validate(record)


class Commitment(StrEnum):
    PROCESSED = "processed"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"


class SimulatedChain:
    def __init__(
        self, kv: KeyValue, market: Market, settings: ChainSettings, landings: Landings
    ) -> None:
        self._kv = kv
        self._market = market
        self._settings = settings
        self._landings = landings
        self.clock = SlotClock(settings.slot_ms)

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        market: Market,
        settings: ChainSettings,
        replicas: int = 1,
        ttl_seconds: float | None = None,
    ) -> SimulatedChain:
        """`replicas`: copies of the chain's records (which signature landed) in a NATS cluster.
        `ttl_seconds`: how long a record is kept (None: for ever). The executor keeps them as
        long as the stream keeps events: an order's redelivery reads its signatures from its
        events, which are older than the records, so it never finds a signature without its
        record (and takes one that landed for one that never did)."""
        kv = await ensure_key_value(js, CHAIN_BUCKET, replicas, ttl_seconds)
        landings = Landings(CHAIN_BUCKET)
        await landings.start(js)
        return cls(kv, market, settings, landings)

    async def close(self) -> None:
        await self._landings.stop()

    def latest_blockhash(self) -> tuple[str, int]:
        slot = self.clock.now()
        digest = hashlib.sha256(f"{self._market.seed}:blockhash:{slot}".encode()).digest()
        return b58encode(digest), slot + self._settings.blockhash_valid_slots

    def sign(self, order_id: str, route: SwapPlan) -> SignedSwap:
        """Build and sign the swap against the latest blockhash."""
        blockhash, last_valid = self.latest_blockhash()
        return self.resign(order_id, route, blockhash, last_valid)

    @staticmethod
    def resign(order_id: str, route: SwapPlan, blockhash: str, last_valid: int) -> SignedSwap:
        """The same message signs to the same signature, so a resumed send is the same tx."""
        message = f"{order_id}:{blockhash}:{route.in_amount}:{route.other_amount_threshold}"
        signature = b58encode(hashlib.sha512(message.encode()).digest())
        return SignedSwap(order_id, route, blockhash, last_valid, signature)

    def _roll(self, *parts: object) -> Decimal:
        digest = hashlib.blake2b(repr((self._market.seed, *parts)).encode(), digest_size=8).digest()
        return Decimal(int.from_bytes(digest, "big")) / Decimal(2**64)

    async def send(self, tx: SignedSwap, attempt: int, fresh: bool = False) -> Outcome | None:
        """sendTransaction: raises what the RPC node would; a repeated send is a no-op.

        A send that returns may still never land (the leader dropped it): only the outcome
        recorded on the chain, read by `wait_confirmed`, says whether it executed. Returns the
        outcome when this send recorded it (so the first poll need not read it back), else None.
        `fresh`: signed just now, so not on the chain yet; the lookup of an earlier landing is
        skipped (a copy signed in the same slot is the same transaction and lands once anyway).
        """
        s = self._settings
        if attempt <= s.chain_rate_limit_first_attempts:
            raise RateLimited("429 Too Many Requests (injected)")
        if self._roll("429", tx.signature, attempt) < s.chain_rate_limit_rate:
            raise RateLimited("429 Too Many Requests")
        if self._roll("behind", tx.signature, attempt) < s.chain_node_behind_rate:
            raise NodeBehind("-32005 Node is behind")
        if not fresh:
            record = await self._record(tx.signature)
            if isinstance(record, Outcome):
                return None
            if record is not None:
                raise BlockhashExpired(f"{tx.signature[:16]}… expired without landing")
        slot = self.clock.now()
        if slot > tx.last_valid_block_height:
            raise BlockhashExpired(
                f"blockhash {tx.blockhash} expired at {tx.last_valid_block_height}"
            )
        if self._roll("funds", tx.signature) < s.chain_insufficient_funds_rate:
            raise InsufficientFunds("insufficient funds for the swap and its fees")
        outcome = self._execute(tx, slot + self._landing_delay(tx.signature))
        if not outcome.ok and outcome.error_code == SlippageExceeded.code:
            # Preflight simulation catches it before the transaction lands.
            raise SlippageExceeded(
                outcome.error_reason or "", {"venueError": outcome.venue_error or ""}
            )
        dropped = attempt <= s.chain_drop_first_attempts or (
            self._roll("drop", tx.signature, attempt) < s.chain_drop_rate
        )
        if dropped:
            return None
        # A concurrent send of the same transaction finds the key taken: it lands once. So
        # does a send that reaches NATS after its blockhash was settled as expired
        # (`NeverLanded`): it does not land.
        try:
            await self._kv.create(tx.signature, outcome.model_dump_json(by_alias=True).encode())
        except KeyWrongLastSequenceError:
            return None
        return outcome

    def _landing_delay(self, signature: str) -> int:
        s = self._settings
        if s.latency_mode == LatencyMode.ZERO:
            return 0
        span = s.confirm_slots_max - s.confirm_slots_min + 1
        return s.confirm_slots_min + int(self._roll("land", signature) * span)

    def _execute(self, tx: SignedSwap, slot: int) -> Outcome:
        route = tx.route
        token_in = resolve_token(route.input_mint)
        token_out = resolve_token(route.output_mint)
        # Every leg (split or hop) swaps again on its pool as it is at the landing slot.
        fill = self._market.execute(route, slot)
        out_total = fill.out_amount * (BPS - self._settings.chain_frontrun_bps) // BPS
        # The priority fee is bid on the compute-unit limit the route set when it was built.
        fee = network_fee_lamports(
            self._settings.priority_fee_lamports, compute_units=route.compute_unit_limit
        )
        price = from_base_units(token_out, out_total) / from_base_units(token_in, route.in_amount)
        ok = out_total >= route.other_amount_threshold
        reason = None
        if not ok:
            reason = f"output {out_total} below minimum {route.other_amount_threshold}"
            if fill.note:
                reason += f" ({fill.note})"
        return Outcome(
            signature=tx.signature,
            order_id=tx.order_id,
            slot=slot,
            ok=ok,
            error_code=None if ok else SlippageExceeded.code,
            error_reason=reason,
            # The venue whose leg fell furthest below its quote reports the shortfall.
            venue_error=None if ok else VENUE_SLIPPAGE_ERRORS.get(fill.worst_venue),
            in_amount=route.in_amount,
            out_amount=out_total,
            executed_price=price.quantize(Decimal("0.000000001")),
            fee_lamports=fee,
        )

    async def outcome(self, signature: str) -> Outcome | None:
        """getSignatureStatuses: the recorded outcome, or None if it did not land (yet)."""
        record = await self._record(signature)
        return record if isinstance(record, Outcome) else None

    async def _record(self, signature: str) -> Outcome | NeverLanded | None:
        try:
            entry = await self._kv.get(signature)
        except KeyNotFoundError:
            return None
        return decode_record(entry.value or b"")

    async def settle_expired(self, tx: SignedSwap) -> Outcome | None:
        """Make "expired without landing" a fact on the chain, once the clock says so.

        Call it only past `tx.last_valid_block_height`, when no outcome was seen. Records
        `NeverLanded` under the signature with a create, the same write a landing makes:
        returns None when it (or an earlier settlement) did, and then `tx` can never land;
        returns the outcome when a send created it first, however late it arrived.
        """
        never = NeverLanded(
            signature=tx.signature,
            order_id=tx.order_id,
            last_valid_block_height=tx.last_valid_block_height,
            slot=self.clock.now(),
        )
        try:
            await self._kv.create(tx.signature, never.model_dump_json(by_alias=True).encode())
        except KeyWrongLastSequenceError:
            return await self.outcome(tx.signature)
        return None

    def commitment(self, outcome: Outcome) -> Commitment | None:
        """How settled a landed transaction is now (None: not yet visible)."""
        depth = self.clock.now() - outcome.slot
        if depth < 0:
            return None
        if depth >= FINALIZED_DEPTH:
            return Commitment.FINALIZED
        return Commitment.CONFIRMED if depth >= 1 else Commitment.PROCESSED

    async def wait_confirmed(self, tx: SignedSwap, landed: Outcome | None = None) -> Outcome:
        """Wait until the transaction is confirmed (one slot deep) and return its outcome.

        `landed`: the outcome `send` just recorded. Raises `BlockhashExpired` once the chain
        records that the transaction never landed (`settle_expired`): only then is it safe to
        sign the swap again.
        """
        outcome = landed or await self._landing(tx)
        if outcome is None:
            raise BlockhashExpired(
                f"{tx.signature[:16]}… did not land before block {tx.last_valid_block_height}"
            )
        if self._settings.latency_mode == LatencyMode.ZERO:
            return outcome
        # The condition is the slot clock's, not another task's: sleeping is the wait.
        while self.commitment(outcome) not in (Commitment.CONFIRMED, Commitment.FINALIZED):  # noqa: ASYNC110
            await asyncio.sleep(self.clock.seconds_until(outcome.slot + 1))
        return outcome

    async def _landing(self, tx: SignedSwap) -> Outcome | None:
        """The outcome once it is recorded, or None once the chain records it never landed."""
        with self._landings.expect(tx.signature) as landing:
            while True:
                # Read it ourselves too: it may have landed before we registered, or the
                # push may be lost to a reconnect; a few reads per order, not one per slot.
                record = await self._record(tx.signature)
                if record is not None:
                    return record if isinstance(record, Outcome) else None
                expires_in = self.clock.seconds_until(tx.last_valid_block_height + 1)
                if expires_in <= 0:
                    return await self.settle_expired(tx)
                wait = min(expires_in, LANDING_RECHECK_SECONDS)
                with contextlib.suppress(TimeoutError):
                    raw = await asyncio.wait_for(asyncio.shield(landing), wait)
                    record = decode_record(raw)
                    return record if isinstance(record, Outcome) else None
