"""How a submit decides its order was committed, not, or maybe (`dexec_api.commit`)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.errors import OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError

from dexec.bus.publisher import build_event
from dexec.orders.states import EventType
from dexec_api.commit import CommitUncertain, commit_event


class ScriptedStream:
    """Answers each publish with the next outcome: an exception to raise, or an ack."""

    def __init__(self, *outcomes: BaseException | PubAck) -> None:
        self._outcomes = list(outcomes)
        self.msg_ids: list[str] = []

    async def publish(self, subject: str, payload: bytes, **kwargs: Any) -> PubAck:
        self.msg_ids.append(kwargs["headers"]["Nats-Msg-Id"])
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


EVENT = build_event("order-1", EventType.PENDING)
ACK = PubAck(stream="ORDERS", seq=1)


async def test_a_lost_ack_is_published_again_under_the_same_msg_id() -> None:
    stream = ScriptedStream(NatsTimeoutError(), ACK)
    committed = await commit_event(stream, EVENT, budget_seconds=5)  # type: ignore[arg-type]
    assert committed.ack is ACK
    assert stream.msg_ids == ["order-1:pending", "order-1:pending"]


async def test_refusals_alone_mean_the_order_was_not_stored() -> None:
    stream = ScriptedStream(
        OutboundBufferLimitError(), *[NoStreamResponseError() for _ in range(9)]
    )
    with pytest.raises(NoStreamResponseError):
        # Room for a few attempts even on a loaded machine: the last refusal is raised.
        await commit_event(stream, EVENT, budget_seconds=1.0)  # type: ignore[arg-type]


async def test_one_unanswered_attempt_makes_the_outcome_uncertain() -> None:
    stream = ScriptedStream(NatsTimeoutError(), *[NoStreamResponseError() for _ in range(10)])
    with pytest.raises(CommitUncertain):
        await commit_event(stream, EVENT, budget_seconds=0.6)  # type: ignore[arg-type]


async def test_an_ack_that_says_duplicate_means_another_publish_stored_it() -> None:
    """Two requests with one key may both publish the order: the one stored first created it."""
    stream = ScriptedStream(PubAck(stream="ORDERS", seq=1, duplicate=True))
    committed = await commit_event(stream, EVENT, budget_seconds=5)  # type: ignore[arg-type]
    assert committed.stored_here is False


async def test_a_duplicate_after_an_unanswered_attempt_may_be_its_own_copy() -> None:
    stream = ScriptedStream(NatsTimeoutError(), PubAck(stream="ORDERS", seq=1, duplicate=True))
    committed = await commit_event(stream, EVENT, budget_seconds=5)  # type: ignore[arg-type]
    assert committed.stored_here is True
