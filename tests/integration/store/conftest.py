"""A migrated store on each test's fresh database (``db_url``: an SQLite file, PostgreSQL when configured)."""

from __future__ import annotations

import aiosqlite
import pytest

from csms.store.db import create_engine, migrate
from csms.store.repositories import Store


@pytest.fixture
async def store(db_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    await migrate(engine)
    yield Store(engine)
    await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every function run on aiosqlite's thread (its Connection._execute), by name, from now on."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return seen
