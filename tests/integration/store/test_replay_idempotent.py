"""Replaying or reordering acknowledged transaction messages leaves the database unchanged (SQLite, PostgreSQL).

Chargers resend what they think was not acknowledged after a reconnect, in any order (2.0.1 numbers its
messages with seqNo; 1.6 MeterValues carry nothing but their content, so the natural key of a sample,
transaction + instant + measurand + phase, recognises them). A session of each version is applied through
ChargingService; then hypothesis replays any sequence of those messages, and every table a charger
message writes must be exactly as before. Before the natural key, 1.6 replays were stored again (issue 11:
13.7 % duplicate rows over six kill -9 runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from csms.config import ChargerConfig, Config, IdTokenConfig, SiteConfig
from csms.domain.clock import FakeClock
from csms.domain.enums import Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, TxEvent
from csms.services.bus import EventBus
from csms.services.charging import ChargingService
from csms.services.provisioning import seed_from_config
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
E1 = EvseRef(1)
TABLES = {  # every table a transaction message writes, without surrogate ids
    "transactions": "SELECT * FROM transactions ORDER BY key",
    "meter_samples": "SELECT station_id, evse_id, tx_key, at, measurand, phase, value, context FROM meter_samples "
                     "ORDER BY tx_key, at, measurand, phase, value",
    "transaction_messages": "SELECT tx_key, seq_no, kind, at FROM transaction_messages ORDER BY tx_key, seq_no",
}


def smp(minutes: float, wh: float, w: float, soc: float) -> MeterSample:
    return MeterSample(T0 + timedelta(minutes=minutes), (
        SampledValue(Measurand.ENERGY_IMPORT_WH, wh, context="Sample.Periodic", location="Outlet"),
        SampledValue(Measurand.POWER_IMPORT_W, w, context="Sample.Periodic", location="Outlet"),
        *(SampledValue(Measurand.CURRENT_IMPORT_A, w / 690, phase=ph, location="Outlet") for ph in ("L1", "L2", "L3")),
        SampledValue(Measurand.SOC_PCT, soc, location="EV")))


def messages(charging: ChargingService) -> list[Callable[[], Awaitable[Any]]]:
    """A 1.6 session (start, meter values, stop) and a 2.0.1 one (Started, Updated..., Ended), in order. The
    1.6 ones need the transaction id the CSMS gave at the start: filled in when the start is applied."""
    v16: dict[str, str] = {}

    async def start16() -> None:
        r = await charging.transaction(TxEvent(TxEventKind.STARTED, StationId("CP1"), T0, None, E1, "TAG1",
                                               meter_start_wh=1000.0))
        v16["id"] = r.charger_tx_id or ""

    def meter16(m: float) -> Callable[[], Awaitable[Any]]:
        return lambda: charging.meter_values("CP1", E1, v16["id"], (smp(m, 1000 + 200 * m, 12000.0, 20 + m / 2),))

    def stop16() -> Awaitable[Any]:
        return charging.transaction(TxEvent(TxEventKind.ENDED, StationId("CP1"), T0 + timedelta(minutes=60),
                                            v16["id"], E1, meter_stop_wh=13000.0, stop_reason="Local",
                                            samples=(smp(60, 13000.0, 0.0, 50.0),)))

    def ev201(kind: TxEventKind, seq: int, m: float, **kw: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: charging.transaction(TxEvent(
            kind, StationId("CP2"), T0 + timedelta(minutes=m), "t-2", E1,
            "TAG2" if kind is TxEventKind.STARTED else None, seq_no=seq,
            samples=(smp(m, 500 + 150 * m, 9000.0, 30 + m / 3),), **kw))

    return [start16, *(meter16(m) for m in (5, 10, 15, 30, 45)), stop16,
            ev201(TxEventKind.STARTED, 0, 0), *(ev201(TxEventKind.UPDATED, i, 10 * i) for i in range(1, 5)),
            ev201(TxEventKind.ENDED, 5, 55, stop_reason="EVDisconnected")]


async def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    async with store.session() as s:
        return {name: [tuple(r) for r in (await s.s.execute(text(q))).all()] for name, q in TABLES.items()}


async def test_replaying_acknowledged_messages_changes_nothing(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    store = Store(engine)
    cfg = Config(sites=[SiteConfig(id="s1", grid_limit_kw=50.0)],
                 chargers=[ChargerConfig(id="CP1", site="s1"), ChargerConfig(id="CP2", site="s1")],
                 id_tokens=[IdTokenConfig(value="TAG1"), IdTokenConfig(value="TAG2")])
    await seed_from_config(store, cfg)
    clock = FakeClock(T0 + timedelta(hours=2))
    charging = ChargingService(store, EventBus(), clock, heartbeat_interval_s=60)
    msgs = messages(charging)
    try:
        for send in msgs:
            await send()
        before = await snapshot(store)
        assert len(before["meter_samples"]) == 12 * 6  # 12 instants (the 1.6 start has none), 6 values each
        loop = asyncio.get_running_loop()

        @settings(max_examples=40, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(st.integers(0, len(msgs) - 1), min_size=1, max_size=12))
        def replays_change_nothing(order: list[int]) -> None:
            async def replay() -> dict[str, list[tuple[Any, ...]]]:
                for i in order:
                    await msgs[i]()
                return await snapshot(store)
            after = asyncio.run_coroutine_threadsafe(replay(), loop).result(60)
            for name in TABLES:
                assert after[name] == before[name], f"{name} changed by replaying messages {order}"

        await asyncio.to_thread(replays_change_nothing)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("dup", [1, 3])
async def test_migration_removes_stored_duplicates(sqlite_url: str, dup: int) -> None:
    """A database with the duplicates the old code stored: the migration keeps one row per natural key."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from csms.store.db import MIGRATIONS_DIR

    engine = create_engine(sqlite_url)

    def upgrade(sync_conn: Any, rev: str) -> None:
        c = AlembicConfig()
        c.set_main_option("script_location", str(MIGRATIONS_DIR))
        c.attributes["connection"] = sync_conn
        command.upgrade(c, rev)

    async with engine.begin() as conn:
        await conn.run_sync(upgrade, "0004")
        for _ in range(dup + 1):
            await conn.execute(text(
                "INSERT INTO meter_samples (station_id, evse_id, tx_key, at, measurand, phase, value, context) "
                "VALUES ('CP1', 1, 'CP1/1', '2026-01-12 10:05:00.000000', 'Energy.Active.Import.Register', NULL, "
                "2000, NULL)"))
        await conn.run_sync(upgrade, "head")
        n = (await conn.execute(text("SELECT COUNT(*) FROM meter_samples"))).scalar_one()
    await engine.dispose()
    assert n == 1
