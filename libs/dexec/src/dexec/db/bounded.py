"""Postgres calls that give up after a deadline: a stalled server must not hang a caller.

A Postgres that is stopped (SIGSTOP), overloaded or cut off by the network still lets the
kernel accept connections, and then never answers. Nothing bounds that on its own: asyncpg
waits 60 s for a new connection and without limit for a query, including the pool's pre-ping
on a connection it already holds. So the deadline is kept here, around the whole call
(pool checkout, pre-ping, reconnect, query, commit).

On the deadline the call is cancelled but not awaited: SQLAlchemy then invalidates the
connection, and its close waits up to 2 s more for the server (shielded from the
cancellation). That clean-up finishes in the background; the caller has its answer at the
deadline. A write given up on may have committed or not: only writes that are safe to
repeat go through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")

# What a call fails with when Postgres refuses, drops or cannot take the connection: the
# driver's errors (a database not accepting connections, too many clients, a server shutting
# down, a connection closed under the query), the socket's, and timeouts.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    DBAPIError,
    PoolTimeoutError,
    OSError,
    TimeoutError,
)

# Reads given up on, still cleaning up: the event loop keeps only weak references to tasks.
_abandoned: set[asyncio.Task[Any]] = set()


class DatabaseUnavailable(Exception):
    """Postgres refused or failed the call, or did not answer within its deadline."""


async def read_within(
    engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[T]], seconds: float
) -> T:
    """`read` on a pooled connection, or `DatabaseUnavailable` after at most `seconds`."""
    return await within(_on_connection(engine, read), seconds)


async def write_within(
    engine: AsyncEngine, write: Callable[[AsyncConnection], Awaitable[T]], seconds: float
) -> T:
    """`write` in a transaction committed when it returns, or `DatabaseUnavailable` after at
    most `seconds` (committed or not: `write` must be safe to repeat)."""
    return await within(_in_transaction(engine, write), seconds)


async def within(call: Coroutine[Any, Any, T], seconds: float) -> T:
    """`call`'s result, or `DatabaseUnavailable` if it fails as Postgres calls do or takes
    longer than `seconds`; for calls that take the engine and open their own connections."""
    task = asyncio.create_task(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _abandon(task)  # the caller was cancelled: so is its call
        raise
    if not done:
        _abandon(task)
        raise DatabaseUnavailable(f"Postgres did not answer within {seconds:g} s")
    try:
        return task.result()
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(f"Postgres failed the call: {exc!r}"[:500]) from exc


async def _on_connection(engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with engine.connect() as conn:
        return await read(conn)


async def _in_transaction(
    engine: AsyncEngine, write: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    async with engine.begin() as conn:
        return await write(conn)


def _abandon(task: asyncio.Task[T]) -> None:
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it: the caller already failed
