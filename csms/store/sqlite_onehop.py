"""SQLite through aiosqlite with one thread hop per statement instead of four.

aiosqlite runs every call on its connection's thread: SQLAlchemy's adapter makes a cursor (one hop),
executes (one), fetches the rows (one) and closes the cursor (one), and each hop costs a queue put, a
future, a wake-up of the event loop through its self-pipe and a greenlet switch. For the charger
message path's small statements that costs several times the SQL itself: in the issue 10 profile
(bench/load.py, 500 chargers) aiosqlite's per-call machinery and the loop's self-pipe were a quarter of
the CSMS's CPU. Here a statement is one function run on aiosqlite's thread: cursor, execute, fetch
every row, close; description, rowcount and lastrowid come back with the rows.

Only the plain (buffered) cursor is replaced; server-side cursors and close are aiosqlite's own;
commit and rollback are aiosqlite's too, but skipped (no hop) when sqlite3 has no transaction open:
SQLAlchemy's pool rolls back every connection it gets back, also one whose transaction was just
committed, and that was one hop per group commit for nothing.

`run_batch` goes further for the group commit's append-only rows and transaction updates: their
executemany statements and the COMMIT in one function on aiosqlite's thread (one hop for the whole
batch's writes instead of one per statement plus the commit), with the statements compiled once
(`Compiled`) and SQLAlchemy's bind processors applied to the parameters as it would. This leans on SQLAlchemy's asyncio adapter classes (`AsyncAdapt_aiosqlite_cursor`,
its `_adapt_connection._execute_mutex`) and aiosqlite's `Connection._execute`/`_conn`, which are not
public API: `available()` checks they are there, `create_engine` falls back to the stock adapter if
not, and tests/integration/store/test_sqlite_onehop.py fails when they change.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

try:
    import aiosqlite
    from sqlalchemy.dialects.sqlite.aiosqlite import (
        AsyncAdapt_aiosqlite_connection,
        AsyncAdapt_aiosqlite_cursor,
        AsyncAdapt_aiosqlite_dbapi,
    )
    from sqlalchemy.util.concurrency import await_
except ImportError:  # SQLAlchemy 2.0 names these differently: the stock adapter is used
    AsyncAdapt_aiosqlite_cursor = None  # type: ignore[assignment,misc]


def available() -> bool:
    return (AsyncAdapt_aiosqlite_cursor is not None
            and hasattr(aiosqlite.Connection, "_execute") and hasattr(aiosqlite.Connection, "_conn"))


def _run(conn: sqlite3.Connection, operation: Any, parameters: Any, many: bool) -> tuple[Any, int, Any, list[Any]]:
    """On aiosqlite's thread: the whole statement, rows included."""
    cur = conn.cursor()
    try:
        if many:
            cur.executemany(operation, parameters)
        elif parameters is None:
            cur.execute(operation)
        else:
            cur.execute(operation, parameters)
        rows = cur.fetchall() if cur.description else []
        return cur.description, cur.rowcount, cur.lastrowid, rows
    finally:
        cur.close()


if AsyncAdapt_aiosqlite_cursor is not None:

    class OneHopCursor(AsyncAdapt_aiosqlite_cursor):  # type: ignore[misc,valid-type]
        __slots__ = ("_description", "_rowcount", "_lastrowid")

        def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: nothing to open
            self._adapt_connection = adapt_connection
            self._connection = adapt_connection._connection
            self._cursor = None
            self._soft_closed_memoized = {}
            self._rows = collections.deque()
            self._description: Any = None
            self._rowcount = -1
            self._lastrowid: Any = None

        @property
        def description(self) -> Any:
            return self._description

        @property
        def rowcount(self) -> int:
            return self._rowcount

        @property
        def lastrowid(self) -> Any:
            return self._lastrowid

        async def _async_soft_close(self) -> None:  # the rows are already here, nothing is open
            return None

        def close(self) -> None:
            self._rows.clear()

        def execute(self, operation: Any, parameters: Any = None) -> Any:
            try:
                return await_(self._one_hop(operation, parameters, False))
            except Exception as error:
                self._adapt_connection._handle_exception(error)

        def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
            try:
                return await_(self._one_hop(operation, seq_of_parameters, True))
            except Exception as error:
                self._adapt_connection._handle_exception(error)

        async def _one_hop(self, operation: Any, parameters: Any, many: bool) -> None:
            conn = self._connection  # aiosqlite.Connection
            async with self._adapt_connection._execute_mutex:
                self._description, self._rowcount, self._lastrowid, rows = await conn._execute(
                    _run, conn._conn, operation, parameters, many)
            self._rows = collections.deque(rows)

    class OneHopConnection(AsyncAdapt_aiosqlite_connection):  # type: ignore[misc,valid-type]
        __slots__ = ()
        _cursor_cls = OneHopCursor

        def _idle(self) -> bool:
            """No transaction open on the sqlite3 connection (read from the loop's thread: an attribute
            of the connection object, no statement runs on it meanwhile, SQLAlchemy holds it)."""
            conn = self._connection._connection
            return conn is not None and not conn.in_transaction

        def commit(self) -> None:
            if not self._idle():
                super().commit()

        def rollback(self) -> None:
            if not self._idle():
                super().rollback()

    class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):  # type: ignore[misc,valid-type]
        def connect(self, *arg: Any, **kw: Any) -> Any:
            conn = super().connect(*arg, **kw)
            # Same slots, only the cursor class differs: swapping the class keeps the connect logic
            # (daemon thread, creator function) SQLAlchemy's own.
            conn.__class__ = OneHopConnection
            return conn

    def dbapi() -> Any:
        """The DBAPI module for `create_async_engine(..., module=dbapi())`."""
        return OneHopDBAPI(aiosqlite, sqlite3)


class Compiled:
    """A Core statement compiled once for sqlite3 (qmark parameters): its SQL, and `rows(dicts)`, the
    positional tuples sqlite3 takes, with the bind processors SQLAlchemy would apply (UtcDateTime,
    DATETIME as text). Parameter dicts are keyed by bind name without a leading "p_" (the statements
    name their bind parameters p_<column>, as a SET clause may not reuse a column's own name)."""

    def __init__(self, stmt: Any, dialect: Any) -> None:
        c = stmt.compile(dialect=dialect)
        self.sql = str(c)
        self._spec = [(name[2:] if name.startswith("p_") else name,
                       c.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                      for name in c.positiontup]

    def rows(self, params: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        spec = self._spec
        return [tuple(p[k] if proc is None or p[k] is None else proc(p[k]) for k, proc in spec) for p in params]


def _run_batch(conn: sqlite3.Connection, steps: list[tuple[str, list[tuple[Any, ...]], int | None]],
               commit: bool) -> tuple[list[int], bool]:
    """On aiosqlite's thread: each executemany; then COMMIT if `commit` and every step with an expected
    row count changed that many rows (else the caller repairs and commits as usual)."""
    counts: list[int] = []
    cur = conn.cursor()
    try:
        for sql, rows, _ in steps:
            cur.executemany(sql, rows)
            counts.append(cur.rowcount)
    finally:
        cur.close()
    if commit and all(want is None or got == want for (_, _, want), got in zip(steps, counts, strict=True)):
        conn.commit()
        return counts, True
    return counts, False


async def run_batch(session: Any, steps: list[tuple[Compiled, Sequence[dict[str, Any]], bool]],
                    commit: bool) -> tuple[list[int], bool]:
    """Run `steps` (statement, parameter dicts, whether each dict must change exactly one row) in the
    session's transaction in one hop, and commit it there if `commit` and the row counts are as expected.
    Returns the row counts and whether it committed. The session's own commit is then a no-op (no hop)."""
    conn = await session.connection()
    fairy = await conn.get_raw_connection()
    adapt = fairy.dbapi_connection  # OneHopConnection
    driver = adapt._connection  # aiosqlite.Connection
    plan = [(c.sql, c.rows(params), len(params) if exact else None) for c, params, exact in steps]
    sync = conn.sync_connection
    events = sync is not None and (sync._has_events or sync.engine._has_events)
    if events:  # statement listeners (echo, tests counting statements) see these as executemany calls
        for sql, rows, _ in plan:
            sync.dispatch.before_cursor_execute(sync, None, sql, rows, None, True)
    try:
        async with adapt._execute_mutex:
            result: tuple[list[int], bool] = await driver._execute(_run_batch, driver._conn, plan, commit)
    except sqlite3.Error as e:  # as SQLAlchemy would raise it (the store maps OperationalError to an outage)
        raise DBAPIError.instance(plan[0][0] if plan else "COMMIT", None, e, sqlite3.Error) from e
    if events:
        for sql, rows, _ in plan:
            sync.dispatch.after_cursor_execute(sync, None, sql, rows, None, True)
    return result


def is_onehop(engine: Any) -> bool:
    """Whether `engine` (sync or async) runs on this module's adapter (run_batch works on it)."""
    dbapi = getattr(engine, "dialect", None) and engine.dialect.loaded_dbapi
    return AsyncAdapt_aiosqlite_cursor is not None and isinstance(dbapi, OneHopDBAPI)
