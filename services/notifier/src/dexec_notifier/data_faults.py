"""Which failures of a recorder batch are the fault of its data rather than of Postgres or the
network.

A batch that fails because of a value in it fails the same way on every redelivery, so the
recorder looks for the events at fault instead of retrying the whole batch (see
`dexec_notifier.recorder.record_isolating`). Anything else (a lost connection, a timeout,
Postgres restarting or out of disk) passes with time, and retrying the whole batch recovers
from it. Anything this module does not recognise counts as that kind, so an unexpected error
stalls the recorder, which is visible and loses nothing, and never terminates good events.
"""

from __future__ import annotations

import decimal

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, StatementError


def is_data_fault(exc: BaseException) -> bool:
    """Whether `exc` means that a value in the batch can never be stored.

    - Postgres' SQLSTATE class 22, "data exception": a NUL in text or `\\u0000` in JSONB, a
      number outside its column's range, a string too long for its column. asyncpg raises
      these as subclasses of `asyncpg.exceptions.DataError`, and raises that class itself when
      it cannot encode an argument (an int beyond the column's 32 or 64 bits). SQLAlchemy's
      asyncpg dialect wraps them in a plain `DBAPIError`; other drivers use
      `sqlalchemy.exc.DataError`.
    - SQLAlchemy failing to convert a value before sending it: orjson, the JSONB serializer,
      refuses an integer beyond 64 bits in event data with a TypeError.
    - An order's `amountIn` that is not a number (`decimal.InvalidOperation` from the row's
      `amount_in`).
    """
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, DBAPIError):
        return not exc.connection_invalidated and isinstance(
            _driver_error(exc), asyncpg.exceptions.DataError
        )
    if isinstance(exc, StatementError):
        return isinstance(exc.orig, TypeError | ValueError)
    return isinstance(exc, decimal.InvalidOperation)


def describe(exc: BaseException) -> str:
    """The reason alone: SQLAlchemy's message would add the statement and the whole batch."""
    reason: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        reason = _driver_error(exc)
    elif isinstance(exc, StatementError):
        reason = exc.orig
    reason = reason or exc
    return f"{type(reason).__name__}: {reason}"


def _driver_error(exc: DBAPIError) -> BaseException | None:
    # The dialect's DBAPI-style exception (`exc.orig`) is raised from asyncpg's own.
    return exc.orig.__cause__ if exc.orig is not None else exc.__cause__
