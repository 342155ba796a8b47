"""PostgreSQL: the group commit's own writes, and the transaction itself, in one round trip.

A group commit's batch ends with the rows its units left for later (transaction UPDATEs, status history,
meter samples, applied seqNos; see StoreSession.flush_later). Through SQLAlchemy's asyncpg adapter that
was BEGIN, one executemany or INSERT per table and COMMIT: up to six round trips per batch, each a wake-up
of a PostgreSQL backend and of the event loop. On this 2-core machine the loop was often not given the
core back at once after such a send (py-spy: 40-50 % of the busy samples in `socket.send` under
asyncpg at 3,000-10,000 chargers), and the writer's transactions sat "idle in transaction" for
hundreds of milliseconds between statements.

Here the four tables' rows go as arrays into one statement with data-modifying CTEs (`unnest`), so a
batch is one statement. When nothing else ran in the transaction yet (the usual case on the message
path: its reads are answered from memory), no BEGIN is sent either: the statement is its own
transaction, committed by the server with it, and the session's commit has nothing left to send. A
statement is atomic, so "all of the batch or nothing" holds as before; if it fails (a seqNo applied
twice), nothing of it is committed and the group commit re-runs each unit alone.

A transaction row that went away meanwhile is inserted again by the same statement (what `_upsert_each`
does in the other path). The statement is prepared once per connection (asyncpg's statement cache).

The autocommit switch leans on the adapter's `isolation_level` attribute and `_transaction` (not public
API): `available()` checks them, the store falls back to the statement-per-table path without them, and
tests/integration/store/test_pg_batch.py fails when they change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table


def available() -> bool:
    try:
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
    except ImportError:
        return False
    return hasattr(AsyncAdapt_asyncpg_connection, "_start_transaction") and hasattr(
        AsyncAdapt_asyncpg_connection, "autocommit")


class _Rows:
    """One table's rows as arrays: column names, their SQL types, and SQLAlchemy's bind processors."""

    def __init__(self, table: Table, names: Sequence[str], dialect: Any, first: int) -> None:
        self.names = list(names)
        cols = [table.c[n] for n in names]
        self.types = [c.type.compile(dialect=dialect) for c in cols]
        self.procs: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).bind_processor(dialect) for c in cols]
        self.first = first  # the first parameter number ($n) of this table's arrays

    def unnest(self, q: Callable[[str], str]) -> str:
        args = ", ".join(f"${self.first + i}::{t}[]" for i, t in enumerate(self.types))
        return f"unnest({args}) AS x({', '.join(q(n) for n in self.names)})"

    def arrays(self, rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> list[list[Any]]:
        out = []
        for key, proc in zip(keys or self.names, self.procs, strict=True):
            if proc is None:
                out.append([r[key] for r in rows])
            else:
                out.append([None if r[key] is None else proc(r[key]) for r in rows])
        return out


class PgBatch:
    """The statement for one batch's rows, built once per store from the tables and field names."""

    def __init__(self, dialect: Any, tx: Table, tx_fields: Sequence[str], history: Table,
                 history_fields: Sequence[str], samples: Table, sample_fields: Sequence[str],
                 seqs: Table, seq_fields: Sequence[str]) -> None:
        q = dialect.identifier_preparer.quote
        self._tx = _Rows(tx, ["key", *tx_fields], dialect, 1)
        self._tx_keys = ["b_key", *tx_fields]  # the pending UPDATEs' parameter names
        n = 1 + len(self._tx.names)
        self._history = _Rows(history, history_fields, dialect, n)
        n += len(self._history.names)
        self._samples = _Rows(samples, sample_fields, dialect, n)
        n += len(self._samples.names)
        self._seqs = _Rows(seqs, seq_fields, dialect, n)

        def cols(r: _Rows) -> str:
            return ", ".join(q(c) for c in r.names)

        tq, key = q(tx.name), q("key")
        sets = ", ".join(f"{q(c)} = x.{q(c)}" for c in tx_fields)
        self.sql = (
            f"WITH tx_in AS (SELECT * FROM {self._tx.unnest(q)}), "
            f"tx_upd AS (UPDATE {tq} AS t SET {sets} FROM tx_in AS x WHERE t.{key} = x.{key} RETURNING t.{key}), "
            # a row that went away meanwhile: inserted again (the other path's update-or-insert)
            f"tx_new AS (INSERT INTO {tq} ({cols(self._tx)}) SELECT {cols(self._tx)} FROM tx_in "
            f"WHERE {key} NOT IN (SELECT {key} FROM tx_upd)), "
            # (data-modifying CTEs run whether or not the query reads them)
            f"hist AS (INSERT INTO {q(history.name)} ({cols(self._history)}) "
            f"SELECT * FROM {self._history.unnest(q)}), "
            # a value already stored under the natural key (a replayed MeterValues) is skipped
            f"smp AS (INSERT INTO {q(samples.name)} ({cols(self._samples)}) "
            f"SELECT * FROM {self._samples.unnest(q)} ON CONFLICT DO NOTHING), "
            # a seqNo applied twice raises (unique): nothing of the statement is committed
            f"seq AS (INSERT INTO {q(seqs.name)} ({cols(self._seqs)}) "
            f"SELECT * FROM {self._seqs.unnest(q)}) "
            "SELECT 1")

    def parameters(self, txs: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]],
                   samples: Sequence[dict[str, Any]], seqs: Sequence[dict[str, Any]]) -> tuple[Any, ...]:
        return (*self._tx.arrays(txs, self._tx_keys), *self._history.arrays(history),
                *self._samples.arrays(samples), *self._seqs.arrays(seqs))

    async def run(self, session: Any, txs: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]],
                  samples: Sequence[dict[str, Any]], seqs: Sequence[dict[str, Any]]) -> None:
        """Write the rows in `session`'s transaction; if no statement ran in it yet, as a transaction of
        its own (committed when this returns)."""
        conn = await session.connection()
        fairy = await conn.get_raw_connection()
        adapt = fairy.dbapi_connection
        alone = adapt._transaction is None and not adapt.autocommit
        if alone:  # no BEGIN: the adapter starts none in autocommit, the server commits the statement
            adapt.autocommit = True
        try:
            await conn.exec_driver_sql(self.sql, self.parameters(txs, history, samples, seqs))
        finally:
            if alone:
                adapt.autocommit = False
