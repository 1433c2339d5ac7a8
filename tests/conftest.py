from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_stream
from dexec.settings import CommonSettings
from tests.support.backends import PostgresBackend, nats_backend, postgres_backend
from tests.support.stack import Stack, start_stack

# A test about to time out prints what each of its asyncio tasks is waiting for.
pytest_plugins = ["tests.support.hang_report"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresBackend]:
    with postgres_backend() as backend:
        yield backend


@pytest.fixture(scope="session")
async def migrated_postgres(postgres: PostgresBackend) -> PostgresBackend:
    await postgres.prepare_template()
    return postgres


@pytest.fixture
async def database_url(migrated_postgres: PostgresBackend) -> str:
    return await migrated_postgres.fresh_database()


@pytest.fixture
def nats_url() -> Iterator[str]:
    with nats_backend() as url:
        yield url


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on a real NATS with the ORDERS stream declared, as services do."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, CommonSettings(nats_url=nats_url))
    yield js
    await nc.close()


@pytest.fixture
async def start(nats_url: str, database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start the four services with settings overridden for this test."""
    stacks: list[Stack] = []

    async def _start(**overrides: Any) -> Stack:
        stack = await start_stack(nats_url, database_url, **overrides)
        stacks.append(stack)
        return stack

    yield _start
    failures: list[BaseException] = []
    for stack in stacks:
        try:
            await stack.stop()
        except Exception as exc:  # the other stacks must still stop
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
async def stack(start: Callable[..., Any]) -> Stack:
    return await start()
