"""The Alembic migrations build exactly the tables the SQLModel models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import dexec.db.models  # noqa: F401  (the models register their tables)


def differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, SQLModel.metadata))


async def test_a_migrated_database_has_the_models_columns_indexes_and_defaults(
    database_url: str,
) -> None:
    """A column added to a model without its migration (or the other way round) would work in
    tests that create tables from the models, and fail in a deployment: this compares what the
    migrations made (the test database is migrated) with the models."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    assert found == []
