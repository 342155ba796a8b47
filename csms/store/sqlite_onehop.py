"""SQLite through aiosqlite with one thread hop per statement instead of four.

aiosqlite runs every call on its connection's thread: SQLAlchemy's adapter makes a cursor (one hop),
executes (one), fetches the rows (one) and closes the cursor (one), and each hop costs a queue put, a
future, a wake-up of the event loop through its self-pipe and a greenlet switch. For the charger
message path's small statements that costs several times the SQL itself: in the issue 10 profile
(bench/load.py, 500 chargers) aiosqlite's per-call machinery and the loop's self-pipe were a quarter of
the CSMS's CPU. Here a statement is one function run on aiosqlite's thread: cursor, execute, fetch
every row, close; description, rowcount and lastrowid come back with the rows.

Only the plain (buffered) cursor is replaced; server-side cursors, commit, rollback and close are
aiosqlite's own. This leans on SQLAlchemy's asyncio adapter classes (`AsyncAdapt_aiosqlite_cursor`,
its `_adapt_connection._execute_mutex`) and aiosqlite's `Connection._execute`/`_conn`, which are not
public API: `available()` checks they are there, `create_engine` falls back to the stock adapter if
not, and tests/integration/store/test_sqlite_onehop.py fails when they change.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

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
