"""`dexec-rerecord SEQ...`: record events the recorder terminated because Postgres refused them.

The recorder terminates an event Postgres refuses for a value in it, so that it cannot stall
every event behind it; its log names the event's stream sequence, and the event stays in the
stream until its max age. Once what refused it is fixed (a column widened by a migration,
say), this reads those sequences from the stream and records them as the recorder does, in
one transaction: the events are inserted, folded into their orders' rows and queued for their
webhooks. The fold does not depend on the order events come in (`OrderView.apply`), so an
event recorded after its order's later ones lands where it belongs. An event already recorded
changes nothing, so running it twice, or on a sequence never refused, is harmless.

Exit status: 0 when every sequence is recorded (now or before), 1 when one is refused again,
is not an order event, or is not in the stream, 2 when NATS or Postgres cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from enum import StrEnum

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from dexec.bus.subjects import STREAM
from dexec.db.engine import create_engine
from dexec_notifier.recorder import Recorded, record_isolating, to_recorded
from dexec_notifier.settings import NotifierSettings


class Outcome(StrEnum):
    RECORDED = "recorded"
    ALREADY_RECORDED = "already recorded"
    REFUSED = "refused again"
    MALFORMED = "not an order event"
    NOT_IN_STREAM = "not in the stream"


DONE = frozenset({Outcome.RECORDED, Outcome.ALREADY_RECORDED})


async def rerecord(
    js: JetStreamContext, engine: AsyncEngine, seqs: Sequence[int]
) -> dict[int, Outcome]:
    """Record the stream's events at `seqs`; what became of each."""
    outcomes: dict[int, Outcome] = {}
    batch: list[Recorded] = []
    for seq in sorted(set(seqs)):  # in stream order, as the recorder folds them
        try:
            msg = await js.get_msg(STREAM, seq)
        except NotFoundError:  # never stored, deleted, or past the stream's max age
            outcomes[seq] = Outcome.NOT_IN_STREAM
            continue
        try:
            batch.append(to_recorded(seq, msg.data or b"", msg.headers))
        except ValidationError:
            outcomes[seq] = Outcome.MALFORMED
    written = await record_isolating(engine, batch)
    fresh = {r.seq for r in written.fresh}
    refused = {r.seq for r in written.rejected}
    for r in batch:
        if r.seq in fresh:
            outcomes[r.seq] = Outcome.RECORDED
        elif r.seq in refused:
            outcomes[r.seq] = Outcome.REFUSED
        else:
            outcomes[r.seq] = Outcome.ALREADY_RECORDED
    return dict(sorted(outcomes.items()))


async def run(settings: NotifierSettings, seqs: Sequence[int]) -> dict[int, Outcome]:
    # No reconnecting: a tool run by hand should say at once that NATS is not there.
    nc = await nats.connect(settings.nats_url, name="dexec-rerecord", allow_reconnect=False)
    engine = create_engine(settings.database_url, 1)
    try:
        return await rerecord(nc.jetstream(), engine, seqs)
    finally:
        await engine.dispose()
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dexec-rerecord",
        description="Record again the events the recorder terminated because Postgres refused "
        "them (its log names their stream sequences), once what refused them is fixed. "
        "Reads DEXEC_NATS_URL and DEXEC_DATABASE_URL as the notifier does.",
    )
    parser.add_argument("seqs", metavar="SEQ", type=int, nargs="+", help="stream sequences")
    args = parser.parse_args(argv)
    if any(seq < 1 for seq in args.seqs):
        parser.error("stream sequences start at 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        outcomes = asyncio.run(run(NotifierSettings(), args.seqs))
    except Exception as exc:  # NATS or Postgres unreachable, or failing: nothing was recorded
        print(f"dexec-rerecord: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for seq, outcome in outcomes.items():
        print(f"{seq}\t{outcome}")
    return 0 if all(outcome in DONE for outcome in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
