from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from dexec.bus.connection import ensure_stream
from dexec.db.migrate import upgrade
from dexec.settings import CommonSettings
from dexec_tools.servers import PostgresServer
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
def own_postgres() -> Iterator[PostgresServer]:
    """A migrated Postgres of the test's own, which it may freeze (`tests.support.freezing`).
    Under /tmp (from mkdtemp), not pytest's tmp_path: the server's unprivileged user must
    reach it."""
    data_dir = Path(tempfile.mkdtemp(prefix="dexec-test-pg-"))
    try:
        with PostgresServer(data_dir) as server:
            upgrade(server.url())
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


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
