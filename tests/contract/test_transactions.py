"""TransactionRepo: the same behaviour from every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.domain.enums import ChargingState, Measurand
from csms.domain.ids import EvseRef, StationId, TransactionKey, transaction_key
from csms.domain.model import ChargingNeeds, MeterSample, SampledValue, Transaction
from csms.domain.records import StoredValue

from .test_billing import invoice_for

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def tx(station: str, charger_id: str, start_min: int = 0, *, token: str | None = "TAG", evse: int = 1,
       ended_min: int | None = None, energy_wh: float = 0.0) -> Transaction:
    return Transaction(
        key=transaction_key(station, charger_id), station_id=StationId(station), charger_tx_id=charger_id,
        evse=EvseRef(evse), id_token=token, started_at=T0 + timedelta(minutes=start_min),
        ended_at=None if ended_min is None else T0 + timedelta(minutes=ended_min), energy_wh=energy_wh)


async def _save(store: Any, *txs: Transaction) -> None:
    async with store.session() as s:
        for t in txs:
            await s.save_transaction(t)


async def test_save_inserts_then_replaces_every_field(store: Any) -> None:
    first = tx("A", "t1")
    await _save(store, first)
    full = replace(first, evse=EvseRef(2, 3), ended_at=T0 + timedelta(hours=1), meter_start_wh=10.0,
                   meter_stop_wh=5010.0, energy_wh=5000.0, power_w=0.0, soc_pct=80.0,
                   charging_state=ChargingState.IDLE, stop_reason="Local", last_seq_no=7, group="fleet",
                   ev_phases=1)
    await _save(store, full)
    async with store.session() as s:
        assert await s.transaction(first.key) == full
        assert await s.transaction_by_charger_id("A", "t1") == full
        assert await s.transaction("A/none") is None and await s.transaction_by_charger_id("A", "x") is None


async def test_active_transactions(store: Any) -> None:
    await _save(store, tx("A", "1", evse=1), tx("B", "2"), tx("A", "3", evse=2, ended_min=5), tx("A", "4", evse=1))
    async with store.session() as s:
        assert [t.charger_tx_id for t in await s.active_transactions()] == ["1", "2", "4"]  # as inserted
        assert [t.charger_tx_id for t in await s.active_transactions("A")] == ["1", "4"]
        on = await s.active_transaction_on("A", 1)
        assert on is not None and on.charger_tx_id == "4"  # the newest
        assert await s.active_transaction_on("A", 2) is None  # ended


async def test_transactions_by_start_newest_first_with_filters(store: Any) -> None:
    await _save(store, tx("A", "1", 0, token="T1"), tx("A", "2", 10, token="T2"), tx("B", "3", 20, token="T1"),
                tx("A", "4", 30, token=None))
    async with store.session() as s:
        ids = [t.charger_tx_id for t in await s.transactions()]
        assert ids == ["4", "3", "2", "1"]
        assert [t.charger_tx_id for t in await s.transactions(since=T0 + timedelta(minutes=10),
                                                             until=T0 + timedelta(minutes=30))] == ["3", "2"]
        assert [t.charger_tx_id for t in await s.transactions(station_id="A")] == ["4", "2", "1"]
        assert [t.charger_tx_id for t in await s.transactions(id_tokens={"T1"})] == ["3", "1"]
        assert [t.charger_tx_id for t in await s.transactions(offset=1, limit=2)] == ["3", "2"]


async def test_v16_transactions_get_unique_integer_ids_and_are_found_by_fingerprint(store: Any) -> None:
    async with store.session() as s:
        a = await s.insert_v16_transaction(tx("A", ""), "fp-a")
        b = await s.insert_v16_transaction(tx("A", "", evse=2), "fp-b")
        c = await s.insert_v16_transaction(tx("B", ""), "fp-c")
    assert len({int(a.charger_tx_id), int(b.charger_tx_id), int(c.charger_tx_id)}) == 3
    assert a.key == f"A/{a.charger_tx_id}" and (a.evse, b.evse) == (EvseRef(1), EvseRef(2))
    async with store.session() as s:
        assert await s.transaction_by_fingerprint("fp-b") == b
        assert await s.transaction_by_fingerprint("fp-none") is None
        assert await s.transaction(a.key) == a


async def test_seq_numbers(store: Any) -> None:
    t = tx("A", "t1")
    async with store.session() as s:
        assert await s.transaction_and_seq_seen("A", "t1", 0) == (None, False)
        await s.save_transaction(replace(t, last_seq_no=1))  # last_seq_no: the highest seqNo recorded, as written
        await s.record_seq(t.key, 0, "Started", T0)
        await s.record_seq(t.key, 1, "Updated", T0)
    async with store.session() as s:
        assert await s.seq_seen(t.key, 1) and not await s.seq_seen(t.key, 2)
        seen_tx, seen = await s.transaction_and_seq_seen("A", "t1", 1)
        assert seen_tx == replace(t, last_seq_no=1) and seen
        assert await s.transaction_and_seq_seen("A", "t1", 2) == (replace(t, last_seq_no=1), False)


async def test_a_seq_number_applied_twice_fails_the_transaction(store: Any) -> None:
    async with store.session() as s:
        await s.record_seq("A/t1", 0, "Started", T0)
    with pytest.raises(Exception):  # noqa: B017 - the SQL store's IntegrityError, the fake's ValueError
        async with store.session() as s:
            await s.record_seq("A/t1", 0, "Started", T0)
            await s.upsert_group("written-with-it", 1.0)
    async with store.session() as s:
        assert await s.groups() == {}


def _sample(minute: int, wh: float, w: float | None = None) -> MeterSample:
    values = [SampledValue(Measurand.ENERGY_IMPORT_WH, wh, context="Sample.Periodic")]
    if w is not None:
        values += [SampledValue(Measurand.POWER_IMPORT_W, w / 2, phase="L1"),
                   SampledValue(Measurand.POWER_IMPORT_W, w / 2, phase="L2")]
    return MeterSample(T0 + timedelta(minutes=minute), tuple(values))


async def test_samples_in_time_order_replays_skipped(store: Any) -> None:
    key = TransactionKey("A/t1")
    async with store.session() as s:
        assert not await s.samples_stored(key, [_sample(0, 100.0)])
        await s.add_samples("A", 1, key, [_sample(5, 600.0), _sample(0, 100.0, 7000.0)])
        await s.add_samples("A", 1, "A/other", [_sample(1, 1.0)])
    async with store.session() as s:
        assert await s.samples_stored(key, [_sample(0, 100.0, 7000.0), _sample(5, 600.0)])
        assert not await s.samples_stored(key, [_sample(0, 100.0), _sample(10, 900.0)])  # one of them is new
        assert not await s.samples_stored(key, [])
        await s.add_samples("A", 1, key, [_sample(5, 600.0), _sample(10, 900.0)])  # a replay, and one new
    async with store.session() as s:
        rows = await s.samples(key)
        assert await s.samples(key, offset=1, limit=2) == rows[1:3]
    energy, p1, p2, e5, e10 = rows
    assert energy == StoredValue(T0, "Energy.Active.Import.Register", None, 100.0, "Sample.Periodic")
    assert {(p1.phase, p1.value), (p2.phase, p2.value)} == {("L1", 3500.0), ("L2", 3500.0)}
    assert [(v.at, v.value) for v in (e5, e10)] == [(T0 + timedelta(minutes=5), 600.0),
                                                   (T0 + timedelta(minutes=10), 900.0)]


async def test_session_statistics(store: Any) -> None:
    await _save(store, tx("A", "1", 0, token="T1", ended_min=30, energy_wh=1000.0),
                tx("A", "2", 60, token="T1", ended_min=70, energy_wh=500.0),
                tx("B", "3", 120, token="T1"), tx("C", "4", 0, token="T2", ended_min=90))
    async with store.session() as s:
        assert await s.session_durations_s("T1") == [600.0, 1800.0]  # newest start first, ended only
        assert await s.session_durations_s("T1", limit=1) == [600.0]
        assert await s.session_durations_s("nobody") == []
        got = sorted(await s.ended_sessions_since(["A", "B"], T0 + timedelta(minutes=1)))
        assert got == [(T0 + timedelta(minutes=60), T0 + timedelta(minutes=70), 500.0)]
        assert len(await s.ended_sessions_since(["A", "C"], T0)) == 3


async def test_stated_departures_pair_the_last_stated_one_with_the_end(store: Any) -> None:
    await _save(store, tx("A", "1", 0, ended_min=30), tx("A", "2", 60, ended_min=90), tx("B", "3", 0),
                tx("C", "4", 0, ended_min=30))
    stated = [("A", -1, 40), ("A", 10, 25), ("A", 95, 200),         # before its start: counts; later one wins
              ("B", 5, 50), ("C", 5, 35), ("A", 61, None)]           # running; another site; none stated
    async with store.session() as s:
        for station, at_min, dep_min in stated:
            await s.add_charging_needs(ChargingNeeds(
                StationId(station), EvseRef(1), T0 + timedelta(minutes=at_min), energy_amount_wh=1000.0,
                departure_time=None if dep_min is None else T0 + timedelta(minutes=dep_min)))
    async with store.session() as s:
        got = await s.stated_departures_since(["A", "B"], T0 - timedelta(minutes=5))
        assert got == [(T0 + timedelta(minutes=25), T0 + timedelta(minutes=30))]
        assert await s.stated_departures_since(["A"], T0 + timedelta(minutes=1)) == []


async def test_ended_transactions_without_invoice(store: Any) -> None:
    a, b, c = tx("A", "1", ended_min=50), tx("A", "2", ended_min=20), tx("A", "3", ended_min=30)
    await _save(store, a, b, c, tx("A", "4"), tx("A", "5", ended_min=1))
    async with store.session() as s:
        assert await s.add_invoice(invoice_for(c))
    async with store.session() as s:
        got = await s.ended_transactions_without_invoice(T0 + timedelta(minutes=10))
    assert [t.charger_tx_id for t in got] == ["2", "1"]  # by end
