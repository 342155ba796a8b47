"""The store contract: one suite, every store. `store` is the in-memory fake (csms.store.memory), the SQL
store on an SQLite file, and the SQL store on PostgreSQL.

PostgreSQL: CSMS_TEST_POSTGRES_URL if set, else postgresql+asyncpg://postgres@127.0.0.1:5432/test. When it
cannot be reached the PostgreSQL cases are skipped, saying so, unless CSMS_TEST_POSTGRES_URL or
CSMS_REQUIRE_SERVICES=1 (both set by .ci/run) is set: then they fail. One database per run (created next
to the given one, dropped at the end), emptied before each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.store.db import create_engine, migrate
from csms.store.memory import MemoryStore
from csms.store.repositories import Store
from csms.store.tables import Base

PG_URL = os.environ.get("CSMS_TEST_POSTGRES_URL")
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PG_REQUIRED = bool(PG_URL) or os.environ.get("CSMS_REQUIRE_SERVICES") == "1"


async def _admin(url: str) -> Any:
    import asyncpg

    u = make_url(url)
    return await asyncpg.connect(user=u.username or "postgres", password=u.password, host=u.host or "127.0.0.1",
                                 port=u.port or 5432, database=u.database or "postgres", timeout=5)


@pytest.fixture(scope="session")
async def _pg_engine() -> AsyncIterator[AsyncEngine]:
    base = PG_URL or PG_DEFAULT
    try:
        conn = await _admin(base)
    except (OSError, TimeoutError) as e:
        msg = f"PostgreSQL unreachable at {make_url(base).render_as_string()}: {type(e).__name__}: {e}"
        if PG_REQUIRED:
            pytest.fail(msg + " (CSMS_TEST_POSTGRES_URL / CSMS_REQUIRE_SERVICES make it mandatory)")
        pytest.skip(msg + " (start it, or set CSMS_TEST_POSTGRES_URL)")
    name = f"csms_contract_{uuid.uuid4().hex[:10]}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    engine = create_engine(make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()
        conn = await _admin(base)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def _sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    path: Path = tmp_path_factory.mktemp("contract") / "csms.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    yield engine
    await engine.dispose()


async def _emptied(engine: AsyncEngine) -> Store:
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))
    return Store(engine)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def _engine(request: pytest.FixtureRequest) -> AsyncEngine | None:
    """None: the in-memory store. (Sync, so that only the kind asked for is set up: no PostgreSQL for memory.)"""
    if request.param == "memory":
        return None
    return request.getfixturevalue("_pg_engine" if request.param == "postgres" else "_sqlite_engine")  # type: ignore[no-any-return]


@pytest.fixture
async def store(_engine: AsyncEngine | None) -> Any:
    """A fresh, empty store of each kind (typed Any: the tests use it as csms.domain.store_ports.StorePort)."""
    return MemoryStore() if _engine is None else await _emptied(_engine)
