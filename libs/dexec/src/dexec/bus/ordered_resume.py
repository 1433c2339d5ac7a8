"""Where nats-py's ordered consumer resumes after it recreates its consumer.

nats-py (2.16) recreates an ordered push consumer (after a NATS restart, two missed idle
heartbeats or a sequence gap) with `reset_ordered_consumer(_sseq + 1)`, which overwrites the
consumer config's `deliver_policy`/`opt_start_seq` with `BY_START_SEQUENCE` at that seq. `_sseq`
is the stream seq of the last message delivered, 0 before the first: a subscriber that starts at
"now" (`DeliverPolicy.NEW`, or an explicit `opt_start_seq`) but has been delivered nothing yet is
then sent the whole stream from seq 1. The start it asked for is not kept.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext

log = logging.getLogger(__name__)


def resume_after(sub: JetStreamContext.PushSubscription, stream_seq: int, what: str) -> None:
    """Make nats-py's ordered consumer resume after `stream_seq` at its next reset, unless it
    has already delivered later messages. Its state is private (`_JSI._sseq`, the stream seq
    of the last message delivered, from which `reset_ordered_consumer` is called with
    `_sseq + 1`, nats-py 2.16): if that changes, this says so (naming the consumer, `what`) and
    the consumer works as before, replaying the stream after a reset that comes before its first
    message."""
    state = getattr(getattr(sub, "_sub", None), "_jsi", None)
    if not isinstance(getattr(state, "_sseq", None), int):
        log.warning("cannot set where the %s resumes: nats-py's ordered consumer changed", what)
        return
    state._sseq = max(state._sseq, stream_seq)
