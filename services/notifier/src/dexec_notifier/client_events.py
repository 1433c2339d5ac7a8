"""What a WebSocket client (or webhook) receives for one event, rendered once per event.

Live events and cached backfills are rendered straight from the message's JSON, without
building the pydantic model: the notifier forwards events, it does not need to validate what
the services that published them already did. The text is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from dexec.bus.history import StoredEvent
from dexec.orders.events import OrderEvent
from dexec.orders.states import TERMINAL_STATUSES, is_terminal


def client_message(seq: int, event: OrderEvent) -> dict[str, object]:
    """What a client receives for one event."""
    return {
        "orderId": event.order_id,
        "event": str(event.event),
        "status": str(event.status),
        "seq": seq,
        "at": event.at.isoformat(),
        "attempt": event.attempt,
        "data": event.data,
    }


@dataclass(frozen=True, slots=True)
class ClientEvent:
    seq: int
    order_id: str
    terminal: bool
    # The tenant the order belongs to, as its `pending` event says (None on other events).
    tenant: str | None
    text: str

    @classmethod
    def of(cls, stored: StoredEvent) -> ClientEvent:
        """From an event read (and parsed) from the stream."""
        event = stored.event
        return cls(
            stored.seq,
            event.order_id,
            is_terminal(event.status),
            event.data.get("tenant"),
            orjson.dumps(client_message(stored.seq, event)).decode(),
        )

    @classmethod
    def from_json(cls, seq: int, raw: bytes) -> ClientEvent:
        """From a message's JSON as published (`OrderEvent.to_json`); ValueError if malformed."""
        try:
            event = orjson.loads(raw)
            data = event["data"]
            message = {
                "orderId": event["orderId"],
                "event": event["event"],
                "status": event["status"],
                "seq": seq,
                # pydantic writes UTC as "Z"; clients get `datetime.isoformat()`'s "+00:00".
                "at": _isoformat(event["at"]),
                "attempt": event["attempt"],
                "data": data,
            }
            return cls(
                seq,
                event["orderId"],
                event["status"] in TERMINAL_STATUSES,
                data.get("tenant"),
                orjson.dumps(message).decode(),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed event {seq}: {exc!r}") from exc


def _isoformat(at: str) -> str:
    return at[:-1] + "+00:00" if at.endswith("Z") else at
