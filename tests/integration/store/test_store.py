"""Store on a real database (SQLite file; PostgreSQL when configured): migrations, round trips, replay keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect

from csms.domain.enums import AuthorizationStatus, ConnectorStatus, Measurand, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import IdToken, MeterSample, SampledValue, StationInfo, TxEvent
from csms.domain.records import StationSettings
from csms.domain.transactions import new_transaction, start_fingerprint
from csms.store.db import create_engine, migrate
from csms.store.repositories import Store

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


async def test_migrations_are_idempotent_and_create_every_table(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    await migrate(engine)  # a restart applies nothing twice
    async with engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    await engine.dispose()
    assert {"stations", "connectors", "transactions", "transaction_messages", "meter_samples", "id_tokens",
            "groups", "charging_needs", "status_history", "station_events", "alembic_version"} <= names


async def test_station_boot_and_status_round_trip(store: Store) -> None:
    async with store.session() as s:
        await s.save_station_settings("CP-1", StationSettings(site_id="s1"))
        await s.record_boot("CP-1", StationInfo("ACME", "X1", "SN1", "1.0"), "ocpp1.6", T0)
        await s.record_status("CP-1", EvseRef(1), ConnectorStatus.OCCUPIED, T0, None, None)
        # a late notification with an older timestamp must not overwrite the newer status
        await s.record_status("CP-1", EvseRef(1), ConnectorStatus.AVAILABLE, T0 - timedelta(minutes=1), None, None)
    async with store.session() as s:
        st = await s.station("CP-1")
        conns = await s.connectors("CP-1")
        hist = await s.status_history("CP-1")
    assert st is not None and st.info == StationInfo("ACME", "X1", "SN1", "1.0")
    assert st.last_seen == T0 and st.last_seen.tzinfo is not None
    assert [c.status for c in conns] == [ConnectorStatus.OCCUPIED]
    assert len(hist) == 2


async def test_v16_transaction_ids_are_unique_integers_and_fingerprint_finds_replays(store: Store) -> None:
    ev = TxEvent(TxEventKind.STARTED, StationId("CP-1"), T0, None, EvseRef(1), "TAG", seq_no=0, meter_start_wh=100.0)
    fp = start_fingerprint(ev)
    async with store.session() as s:
        a = await s.insert_v16_transaction(new_transaction(ev, "x", "x", None), fp)  # type: ignore[arg-type]
        ev2 = TxEvent(TxEventKind.STARTED, StationId("CP-1"), T0, None, EvseRef(2), "TAG", seq_no=0)
        b = await s.insert_v16_transaction(new_transaction(ev2, "y", "y", None), start_fingerprint(ev2))  # type: ignore[arg-type]
    assert int(a.charger_tx_id) != int(b.charger_tx_id)
    assert a.key == f"CP-1/{a.charger_tx_id}"
    async with store.session() as s:
        again = await s.transaction_by_fingerprint(fp)
        assert again is not None and again.key == a.key
        assert {t.key for t in await s.active_transactions("CP-1")} == {a.key, b.key}


async def test_seq_numbers_and_samples(store: Store) -> None:
    sample = MeterSample(T0, (SampledValue(Measurand.ENERGY_IMPORT_WH, 1234.5),
                              SampledValue(Measurand.POWER_IMPORT_W, 7000.0, phase=None)))
    async with store.session() as s:
        await s.record_seq("CP-1/abc", 1, "Updated", T0)
        await s.add_samples("CP-1", 1, "CP-1/abc", [sample])
    async with store.session() as s:
        assert await s.seq_seen("CP-1/abc", 1)
        assert not await s.seq_seen("CP-1/abc", 2)
        rows = await s.samples("CP-1/abc")
    assert {(r.measurand, r.value) for r in rows} == {("Energy.Active.Import.Register", 1234.5),
                                                           ("Power.Active.Import", 7000.0)}


async def test_id_tokens(store: Store) -> None:
    async with store.session() as s:
        await s.upsert_group("fleet", 3.0)
        await s.upsert_id_token(IdToken("T1", status=AuthorizationStatus.BLOCKED, group="fleet"))
    async with store.session() as s:
        t = await s.id_token("T1")
        assert t is not None and t.status is AuthorizationStatus.BLOCKED and t.group == "fleet"
        assert await s.groups() == {"fleet": 3.0}
        assert await s.id_token("nope") is None
