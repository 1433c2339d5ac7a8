"""The local Postgres that the dev launcher and the tests start (`dexec_tools.servers`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from dexec_tools.servers import PostgresServer

COMMITS = 300


async def test_a_killed_server_keeps_every_commit_it_acknowledged(tmp_path: Path) -> None:
    """Its fast settings trade durability against a machine crash only: a SIGKILL of the
    server right after a run of commits loses none of them (the recorder acks events to
    JetStream once Postgres has committed them, so a lost commit is a lost event)."""
    server = PostgresServer(tmp_path / "pg")
    await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute("create table commits (n int primary key)")
            for n in range(COMMITS):  # one transaction each, as fast as they are acknowledged
                await conn.execute("insert into commits values ($1)", n)
        finally:
            await asyncio.to_thread(server.kill)  # at once after the last acknowledgement
            conn.terminate()
        await asyncio.to_thread(server.start)
        conn = await asyncpg.connect(server.dsn())
        try:
            assert await conn.fetchval("select count(*) from commits") == COMMITS
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)
