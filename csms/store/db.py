"""Engine factory and migrations. No module-level engine: app.py owns it."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from . import sqlite_onehop

log = logging.getLogger("csms.store")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One thread hop per statement instead of four (sqlite_onehop.py), where the adapter allows it.
        onehop = url.startswith("sqlite+aiosqlite") and sqlite_onehop.available()
        extra = {"module": sqlite_onehop.dbapi()} if onehop else {}
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
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


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
