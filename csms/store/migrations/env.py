"""Alembic environment. Runs on the connection csms.store.db.migrate passes in (async engine, run_sync)."""

from alembic import context

from csms.store.tables import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through csms.store.db.migrate(engine)")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
