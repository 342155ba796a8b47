"""Engine factory and migrations. No module-level engine: app.py owns it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from . import sqlite_onehop

log = logging.getLogger("csms.store")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: A pooled PostgreSQL connection idle longer than this is pinged before use (see _ping_when_idle).
IDLE_PING_S = 1.0
#: SQLite connections kept open (and as many more opened for a burst).
SQLITE_POOL_SIZE = 24
#: PostgreSQL connections kept open, and as many more for a burst. SQLAlchemy's default (5 + 10) was shared by
#: the group commit's writer with every read of the message path, the plans' snapshots and billing: at 10,000
#: chargers the writes queued for seconds behind a busy pool while the CSMS used 70 % of a core.
PG_POOL_SIZE = 20


def create_engine(url: str, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One thread hop per statement instead of four (sqlite_onehop.py), where the adapter allows it.
        onehop = url.startswith("sqlite+aiosqlite") and sqlite_onehop.available()
        extra: dict[str, Any] = {"module": sqlite_onehop.dbapi()} if onehop else {}
        if not _sqlite_in_memory(url):
            # SQLAlchemy's default pool keeps 5 connections and opens up to 10 more per use. Each aiosqlite
            # connection is a thread and a sqlite3 connection with its pragmas: in a boot ramp (handshake
            # reads, ready checks, live costs outside the group commit) overflow connections were opened
            # and closed all the time (py-spy: `Thread.start` under `Connection.__await__`, ~4 % of the
            # CPU, issue 10). Kept open instead: an idle one is a thread blocked on its queue.
            extra |= {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **extra)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers (the API) run while a writer commits; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_async_engine(url, echo=echo, pool_size=PG_POOL_SIZE, max_overflow=PG_POOL_SIZE)
    _ping_when_idle(engine)
    return engine


def _sqlite_in_memory(url: str) -> bool:
    # An in-memory database lives in one connection: SQLAlchemy gives it a StaticPool (no pool sizes).
    rest = url.split("://", 1)[-1]
    return rest in ("", "/", "/:memory:") or "mode=memory" in rest


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it sat idle for more than IDLE_PING_S.

    pool_pre_ping pinged on every checkout, and asyncpg's ping is three round trips (BEGIN, ";",
    ROLLBACK): on the message path, where each group commit checks a connection out, that was three
    round trips per commit for a connection used milliseconds before (issue 10). A connection that dies
    while in use (a server restart under load) fails its statement instead; SQLAlchemy then invalidates
    the whole pool, and the group commit re-runs each unit of the failed batch on fresh connections."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= IDLE_PING_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # noqa: BLE001 - any failure: the pool replaces the connection
            raise DisconnectionError(f"ping failed: {type(e).__name__}") from e
        if not alive:
            raise DisconnectionError("ping failed")


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade(sync_conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply Alembic migrations up to head (idempotent). Called at startup."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    log.info("database migrated url=%s", engine.url.render_as_string(hide_password=True))
