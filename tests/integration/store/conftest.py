"""A migrated store on each test's fresh database (``db_url``: an SQLite file, PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from csms.store.db import create_engine, migrate
from csms.store.repositories import Store


@pytest.fixture
async def store(db_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    await migrate(engine)
    yield Store(engine)
    await engine.dispose()
