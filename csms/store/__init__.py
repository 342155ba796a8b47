"""Persistence adapter: SQLAlchemy 2 async (SQLite by default, PostgreSQL via asyncpg) + Alembic."""
