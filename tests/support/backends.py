"""Real NATS JetStream and Postgres for tests: containers when Docker answers, else binaries.

testcontainers raises when the container object is built (it asks the Docker daemon then),
not at `start()`, so the check is whether a daemon answers at all.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from dexec.db.migrate import upgrade

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

TEMPLATE_DB = "dexec_template"
C = TypeVar("C", bound="DockerContainer")


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@dataclass
class PostgresBackend:
    host: str
    port: int
    user: str
    password: str
    admin_db: str

    def dsn(self, database: str) -> str:
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def url(self, database: str) -> str:
        return self.dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)

    async def prepare_template(self) -> None:
        """A migrated template database: each test copies it, which is fast."""
        conn = await asyncpg.connect(self.dsn(self.admin_db))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        # Alembic's env runs its own event loop; run it in a worker thread.
        import asyncio

        await asyncio.to_thread(upgrade, self.url(TEMPLATE_DB))

    async def fresh_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.dsn(self.admin_db))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        return self.url(name)


def on_loopback(container: C, port: int) -> C:
    """The container with `port` published on 127.0.0.1 only (at a free port), not on every
    interface as Docker does by default. docker-py reads a one-element (address,) tuple as
    "this address, any port"; testcontainers passes its `ports` to it as they are."""
    container.ports[port] = ("127.0.0.1",)
    return container


@contextmanager
def postgres_backend() -> Iterator[PostgresBackend]:
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(
            "postgres:16-alpine", username="dexec", password="dexec", dbname="dexec"
        )
        with on_loopback(container, 5432) as pg:
            yield PostgresBackend(
                pg.get_container_host_ip(),
                int(pg.get_exposed_port(5432)),
                "dexec",
                "dexec",
                "dexec",
            )
        return
    from dexec_tools.servers import PostgresServer

    data_dir = Path(tempfile.mkdtemp(prefix="dexec-test-pg-"))
    try:
        with PostgresServer(data_dir) as server:
            yield PostgresBackend("127.0.0.1", server.port, "dexec", "", "dexec")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def nats_backend() -> Iterator[str]:
    """A NATS server with JetStream; yields its URL."""
    if docker_answers():
        from testcontainers.nats import NatsContainer

        # The oldest NATS the services accept (`dexec.bus.connection.MIN_SERVER_VERSION`).
        with on_loopback(NatsContainer("nats:2.11-alpine", jetstream=True), 4222) as nats:
            yield nats.nats_uri()
        return
    from dexec_tools.servers import NatsServer

    data_dir = Path(tempfile.mkdtemp(prefix="dexec-test-nats-"))
    try:
        with NatsServer(data_dir) as server:
            yield server.url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
