"""The async SQLAlchemy engine (asyncpg) and sessions."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def json_dumps(value: Any) -> str:
    """JSONB parameters, encoded by orjson (several times faster than the stdlib).

    What goes into JSONB columns is event data, itself parsed from JSON, with amounts carried
    as strings: orjson's limits (64-bit integers, no NaN) never bind.
    """
    return orjson.dumps(value).decode()


def create_engine(database_url: str, pool_size: int = 10) -> AsyncEngine:
    # pool_pre_ping lets services ride out a Postgres restart without failing requests.
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
