"""The site history the arrival forecast reads (real SQLite file; PostgreSQL when configured)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from csms.config import SmartChargingConfig
from csms.domain.enums import TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import TxEvent
from csms.domain.transactions import new_transaction, start_fingerprint
from csms.services.smart.arrivals import ArrivalHistory
from csms.store.repositories import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)   # a Monday


async def _session(store: Store, station: str, evse: int, start: datetime, hours: float | None,
                   energy_wh: float) -> None:
    ev = TxEvent(TxEventKind.STARTED, StationId(station), start, None, EvseRef(evse), "TAG", seq_no=0)
    async with store.session() as s:
        tx = await s.insert_v16_transaction(new_transaction(ev, "k", "k", None), start_fingerprint(ev))  # type: ignore[arg-type]
        ended = None if hours is None else start + timedelta(hours=hours)
        await s.save_transaction(dataclasses.replace(tx, ended_at=ended, energy_wh=energy_wh))


async def test_ended_sessions_of_the_sites_stations_since(store: Store) -> None:
    await _session(store, "CP-1", 1, T0 - timedelta(days=3), 2.0, 10_000)
    await _session(store, "CP-2", 1, T0 - timedelta(days=2), 4.0, 8_000)
    await _session(store, "CP-1", 1, T0 - timedelta(days=30), 2.0, 5_000)    # too old
    await _session(store, "OTHER", 1, T0 - timedelta(days=1), 2.0, 5_000)    # another site's station
    await _session(store, "CP-2", 2, T0 - timedelta(hours=1), None, 1_000)    # still charging
    async with store.session() as s:
        rows = await s.ended_sessions_since(["CP-1", "CP-2"], T0 - timedelta(days=15))
    assert sorted((start, end, energy) for start, end, energy in rows) == [
        (T0 - timedelta(days=3), T0 - timedelta(days=3) + timedelta(hours=2), 10_000.0),
        (T0 - timedelta(days=2), T0 - timedelta(days=2) + timedelta(hours=4), 8_000.0),
    ]


async def test_history_is_read_once_an_hour_and_feeds_the_forecast(store: Store) -> None:
    cfg = SmartChargingConfig(shave_below_limit=True)   # the forecast is only used when shaving below the limit
    history = ArrivalHistory()
    for k in (1, 2, 3):
        await _session(store, "CP-1", 1, T0 + timedelta(hours=2) - timedelta(days=k), 2.0, 10_000)
    async with store.session() as s:
        first = await history.sessions(s, "site", ["CP-1"], T0, cfg)
    assert len(first) == 3
    await _session(store, "CP-1", 1, T0 - timedelta(days=4), 2.0, 10_000)
    async with store.session() as s:
        assert len(await history.sessions(s, "site", ["CP-1"], T0 + timedelta(minutes=30), cfg)) == 3   # cached
        assert len(await history.sessions(s, "site", ["CP-1"], T0 + timedelta(minutes=61), cfg)) == 4
        off = SmartChargingConfig(shave_below_limit=True, arrival_forecast_days=0)
        assert await history.sessions(s, "site", ["CP-1"], T0 + timedelta(hours=2), off) == ()
