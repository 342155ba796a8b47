"""Shared fixtures: database URLs for each backend the tests must cover.

PostgreSQL tests run when CSMS_TEST_POSTGRES_URL is set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test);
each test gets a fresh database created next to it and dropped afterwards. With CSMS_REQUIRE_SERVICES=1
(set by .ci/run) a missing service is a failure instead of a skip.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("CSMS_TEST_POSTGRES_URL")
MQTT_URL = os.environ.get("CSMS_TEST_MQTT_URL")
REQUIRE = os.environ.get("CSMS_REQUIRE_SERVICES") == "1"


EXAMPLES = {"CSMS_TEST_POSTGRES_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
            "CSMS_TEST_MQTT_URL": "mqtt://127.0.0.1:1883"}


def _missing(what: str, var: str) -> None:
    # The run's summary lists this reason (pytest_terminal_summary below): it must say how to enable them.
    msg = f"{what} not configured: set {var} (e.g. {var}={EXAMPLES[var]}) to run these tests"
    if REQUIRE:
        pytest.fail(msg + " (CSMS_REQUIRE_SERVICES=1 makes them mandatory)")
    pytest.skip(msg)


async def _create_pg_database(base_url: str) -> tuple[str, str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(base_url)
    name = f"csms_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(user=u.username or "postgres", password=u.password, host=u.host or "127.0.0.1",
                                 port=u.port or 5432, database=u.database or "postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return u.set(database=name).render_as_string(hide_password=False), name


async def _drop_pg_database(base_url: str, name: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(base_url)
    conn = await asyncpg.connect(user=u.username or "postgres", password=u.password, host=u.host or "127.0.0.1",
                                 port=u.port or 5432, database=u.database or "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"
        return
    if not PG_URL:
        _missing("PostgreSQL", "CSMS_TEST_POSTGRES_URL")
    url, name = await _create_pg_database(PG_URL)
    try:
        yield url
    finally:
        await _drop_pg_database(PG_URL, name)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (only PostgreSQL: for tests of the server going away)."""
    if not PG_URL:
        _missing("PostgreSQL", "CSMS_TEST_POSTGRES_URL")
    url, name = await _create_pg_database(PG_URL)  # type: ignore[arg-type]
    try:
        yield url
    finally:
        await _drop_pg_database(PG_URL, name)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"


@pytest.fixture
def mqtt_url() -> str:
    if not MQTT_URL:
        _missing("MQTT broker", "CSMS_TEST_MQTT_URL")
    return MQTT_URL  # type: ignore[return-value]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End every run with the skipped tests counted by reason, each reason saying how to enable them
    (pytest -rs would print one line per test: dozens of the same PostgreSQL line)."""
    reasons: Counter[str] = Counter()
    for rep in terminalreporter.stats.get("skipped", []):
        if isinstance(rep.longrepr, tuple):
            reasons[str(rep.longrepr[2]).removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.write_sep("-", "skipped tests, and how to run them")
        for reason, n in reasons.most_common():
            terminalreporter.write_line(f"{n:4d} skipped: {reason}")
