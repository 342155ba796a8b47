"""The SQLite engine runs each statement in one hop to aiosqlite's thread (csms/store/sqlite_onehop.py),
and behaves like the stock adapter: rows, rowcount, executemany, generated keys, errors, transactions.

It leans on non-public parts of SQLAlchemy's asyncio adapter and aiosqlite: this file fails when an
upgrade changes them (then fix the module or let create_engine fall back to the stock adapter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from csms.store import sqlite_onehop
from csms.store.db import create_engine


@pytest.fixture
async def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'onehop.db'}")
    async with eng.begin() as c:
        await c.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT UNIQUE, v REAL)"))
    yield eng
    await eng.dispose()


def test_the_adapter_internals_it_needs_are_there() -> None:
    assert sqlite_onehop.available()


async def test_a_statement_is_one_hop_with_its_rows(engine, hops: list[str]) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as c:
        await c.execute(text("INSERT INTO t (k, v) VALUES ('a', 1.5), ('b', 2.5)"))
        hops.clear()
        rows = (await c.execute(text("SELECT k, v FROM t ORDER BY k"))).all()
        assert hops == ["_run"]  # the stock adapter: cursor, execute, fetchall, close = 4 hops
    assert [tuple(r) for r in rows] == [("a", 1.5), ("b", 2.5)]


async def test_rowcount_executemany_and_generated_keys(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as c:
        res = await c.execute(text("INSERT INTO t (k, v) VALUES (:k, :v)"), [{"k": "x", "v": 1}, {"k": "y", "v": 2}])
        assert res.rowcount == 2
        res = await c.execute(text("INSERT INTO t (k, v) VALUES ('z', 3)"))
        assert res.lastrowid == 3
        res = await c.execute(text("UPDATE t SET v = v + 1 WHERE k IN ('x', 'y')"))
        assert res.rowcount == 2
        res = await c.execute(text("UPDATE t SET v = 0 WHERE k = 'nope'"))
        assert res.rowcount == 0
        assert (await c.execute(text("SELECT sum(v) FROM t"))).scalar() == 2 + 3 + 3


async def test_an_error_rolls_back_and_the_connection_goes_on(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as c:
        await c.execute(text("INSERT INTO t (k, v) VALUES ('a', 1)"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as c:
            await c.execute(text("INSERT INTO t (k, v) VALUES ('b', 1)"))
            await c.execute(text("INSERT INTO t (k, v) VALUES ('a', 2)"))  # duplicate key
    async with engine.connect() as c:
        assert (await c.execute(text("SELECT k FROM t ORDER BY k"))).scalars().all() == ["a"]
