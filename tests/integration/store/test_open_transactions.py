"""The message path reads a connected charger's open transaction from memory (Store.open_transactions),
and from the database whenever memory may not know (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from csms.config import ChargerConfig, Config, IdTokenConfig, SiteConfig
from csms.domain.clock import FakeClock
from csms.domain.enums import ChargingState, Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, TxEvent
from csms.domain.records import StationSettings
from csms.services.bus import EventBus
from csms.services.charging import ChargingService
from csms.services.provisioning import seed_from_config
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)


def ev(kind: TxEventKind, minute: int, seq: int, wh: float, **kw: Any) -> TxEvent:
    at = T0 + timedelta(minutes=minute)
    smp = (MeterSample(at, (SampledValue(Measurand.ENERGY_IMPORT_WH, wh),)),)
    return TxEvent(kind, StationId("CP1"), at, "T1", EvseRef(1), seq_no=seq, samples=smp, **kw)


@pytest.fixture
async def core(db_url: str):  # type: ignore[no-untyped-def]
    cfg = Config(sites=[SiteConfig(id="s1", grid_limit_kw=50.0)], chargers=[ChargerConfig(id="CP1", site="s1")],
                 id_tokens=[IdTokenConfig(value="TAG1")])
    engine = create_engine(db_url)
    await migrate(engine)
    store = Store(engine)
    await seed_from_config(store, cfg)
    svc = ChargingService(store, EventBus(), FakeClock(T0), heartbeat_interval_s=60)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: statements.append(sql.split()[0].upper()))
    yield svc, store, engine, statements
    svc.close()  # its deferred online write must not fire into a later test, after this database is gone
    await engine.dispose()


async def energy(store: Store) -> float:
    async with store.session() as s:
        tx = await s.transaction("CP1/T1")
    assert tx is not None
    return tx.energy_wh


async def test_a_reading_of_an_open_transaction_selects_nothing(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, statements = core
    await svc.transaction(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"))
    statements.clear()
    await svc.transaction(ev(TxEventKind.UPDATED, 1, 1, 200.0))
    # the id token is not asked again either: an Updated carries none
    assert "SELECT" not in statements, statements
    if store.engine.dialect.name == "postgresql":  # the tx, its samples and seqNo in one statement (pg_batch)
        assert statements == ["WITH"], statements
    else:
        assert statements.count("UPDATE") == 1 and statements.count("INSERT") == 2  # tx; samples, seqNo
    assert await energy(store) == 200.0


async def test_a_replay_and_a_late_message_still_go_to_the_database(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, statements = core
    await svc.transaction(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"))
    await svc.transaction(ev(TxEventKind.UPDATED, 2, 2, 400.0))
    statements.clear()
    await svc.transaction(ev(TxEventKind.UPDATED, 2, 2, 400.0))  # the same message again
    assert "SELECT" in statements  # seqNo 2 is not above the last applied: asked, found, ignored
    await svc.transaction(ev(TxEventKind.UPDATED, 1, 1, 200.0))  # seqNo 1 arrives late: applied
    async with store.session() as s:
        assert await s.seq_seen("CP1/T1", 1) and await s.seq_seen("CP1/T1", 2)
    assert await energy(store) == 400.0  # the later reading stays the latest


async def test_a_reconnect_reads_what_another_process_wrote(core, db_url: str) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, _ = core
    await svc.transaction(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"))
    await svc.transaction(ev(TxEventKind.UPDATED, 1, 1, 200.0))
    other = Store(create_engine(db_url))  # e.g. another node that held the charger meanwhile
    try:
        await ChargingService(other, EventBus(), FakeClock(T0), heartbeat_interval_s=60).transaction(
            ev(TxEventKind.UPDATED, 5, 5, 1000.0, charging_state=ChargingState.SUSPENDED_EV))
    finally:
        await other.engine.dispose()
    await svc.disconnected("CP1")
    await svc.connected("CP1", "ocpp2.0.1")
    await svc.transaction(ev(TxEventKind.UPDATED, 6, 6, 1200.0))
    async with store.session() as s:
        tx = await s.transaction("CP1/T1")
    # a stale copy in memory would have written back the state from before the other process's message
    assert tx is not None and tx.charging_state is ChargingState.SUSPENDED_EV
    assert tx.energy_wh == 1200.0 and tx.last_seq_no == 6


async def test_an_ended_transaction_leaves_memory(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, _ = core
    await svc.transaction(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"))
    assert store.open_transactions.get("CP1", "T1") is not None
    await svc.transaction(ev(TxEventKind.ENDED, 3, 3, 600.0, stop_reason="Local"))
    assert store.open_transactions.get("CP1", "T1") is None and len(store.open_transactions) == 0


def v16_meter(minute: int, wh: float) -> TxEvent:
    at = T0 + timedelta(minutes=minute)
    return TxEvent(TxEventKind.UPDATED, StationId("CP1"), at, None, EvseRef(1),
                   samples=(MeterSample(at, (SampledValue(Measurand.ENERGY_IMPORT_WH, wh),)),))


async def test_a_v16_reading_newer_than_the_stored_ones_selects_nothing(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, statements = core
    start = TxEvent(TxEventKind.STARTED, StationId("CP1"), T0, None, EvseRef(1), id_token="TAG1", meter_start_wh=0.0)
    tx_id = (await svc.transaction(start)).charger_tx_id
    statements.clear()
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(1, 100.0).samples)
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(2, 200.0).samples)
    # no "are these samples stored already?" query: they are newer than the newest one stored
    assert "SELECT" not in statements, statements
    statements.clear()
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(1, 100.0).samples)  # resent (no seqNo in 1.6)
    assert "SELECT" in statements  # not newer: asked, found, ignored
    async with store.session() as s:
        tx = await s.transaction_by_charger_id("CP1", tx_id)
        assert tx is not None and tx.energy_wh == 200.0
        assert len(await s.samples(tx.key)) == 2


async def test_after_a_reconnect_a_v16_replay_is_found_in_the_database(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, statements = core
    start = TxEvent(TxEventKind.STARTED, StationId("CP1"), T0, None, EvseRef(1), id_token="TAG1", meter_start_wh=0.0)
    tx_id = (await svc.transaction(start)).charger_tx_id
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(5, 500.0).samples)
    await svc.disconnected("CP1")
    await svc.connected("CP1", "ocpp1.6")
    statements.clear()
    # queued while offline and sent again: older than nothing in memory, so the database is asked
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(5, 500.0).samples)
    assert "SELECT" in statements
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(6, 600.0).samples)  # read and written again
    statements.clear()
    await svc.meter_values("CP1", EvseRef(1), tx_id, v16_meter(7, 700.0).samples)  # newest known again
    assert "SELECT" not in statements, statements
    async with store.session() as s:
        tx = await s.transaction_by_charger_id("CP1", tx_id)
        assert tx is not None and tx.energy_wh == 700.0 and len(await s.samples(tx.key)) == 3


async def test_the_updates_of_one_group_commit_are_one_statement(core) -> None:  # type: ignore[no-untyped-def]
    """Messages of several chargers answered by one commit share one UPDATE executemany, and each
    transaction gets its own values."""
    svc, store, engine, statements = core
    async with store.session() as s:
        await s.save_station_settings("CP2", StationSettings(site_id="s1"))
    await svc.transaction(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"))
    await svc.transaction(replace(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"), station_id=StationId("CP2")))
    statements.clear()
    commits = store.group_commit.commits
    await asyncio.gather(svc.transaction(ev(TxEventKind.UPDATED, 1, 1, 100.0)),
                         svc.transaction(replace(ev(TxEventKind.UPDATED, 1, 1, 300.0), station_id=StationId("CP2"))))
    assert store.group_commit.commits == commits + 1  # both in one transaction
    if store.engine.dialect.name == "postgresql":  # both updates and their rows in one statement (pg_batch)
        assert statements == ["WITH"], statements
    else:
        assert statements.count("UPDATE") == 1, statements
    async with store.session() as s:
        a, b = await s.transaction("CP1/T1"), await s.transaction("CP2/T1")
    assert a is not None and b is not None and (a.energy_wh, b.energy_wh) == (100.0, 300.0)


async def test_a_read_in_the_same_session_sees_a_pending_update(core) -> None:  # type: ignore[no-untyped-def]
    svc, store, _, _ = core
    await svc.transaction(ev(TxEventKind.STARTED, 0, 0, 0.0, id_token="TAG1"))
    async with store.session() as s:
        tx = await s.transaction("CP1/T1")
        assert tx is not None
        await s.save_transaction(replace(tx, energy_wh=700.0))
        # the UPDATE waits for the commit; a read of the table runs it first
        assert [t.energy_wh for t in await s.active_transactions("CP1")] == [700.0]
    assert await energy(store) == 700.0
