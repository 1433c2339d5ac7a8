"""JSON logs: one object a line with time, level, service, order id and trace id.

The order id comes from `extra={"order_id": ...}` or, failing that, from the order the current
task is handling (`ORDER_ID`, set by the consumers per message), so every line logged while an
order is handled names it. The trace and span ids come from the current span (when tracing is
on, see `dexec.tracing`). Any other `extra` field is written as a field of its own, e.g. the
router's `quotes`.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

from dexec import tracing

# The order the current task works on; consumers set it per message (each runs in its task).
ORDER_ID: ContextVar[str | None] = ContextVar("dexec_order_id", default=None)

# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Written above, or noise: uvicorn adds an ANSI-coloured copy of some messages.
_SKIPPED_FIELDS = _STANDARD_FIELDS | {"order_id", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        order_id = getattr(record, "order_id", None) or ORDER_ID.get()
        if order_id:
            entry["order_id"] = order_id
        ids = tracing.current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _SKIPPED_FIELDS:
                entry.setdefault(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # nats-py logs every reconnect attempt at error level; ours already report them.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
