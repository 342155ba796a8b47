"""The learned departure margin (smart.margin) read through the store: real SQLite file; PostgreSQL when
configured. The store query itself is in the contract suite (tests/contract/test_transactions.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from csms.config import SmartChargingConfig
from csms.domain.enums import TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import ChargingNeeds, TxEvent
from csms.domain.transactions import new_transaction, start_fingerprint
from csms.services.smart.margin import DepartureMargins
from csms.store.repositories import Store

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


async def _session(store: Store, station: str, evse: int, start: datetime, hours: float | None,
                   stated: list[datetime | None], key: str) -> None:
    """A session of ``hours`` (None: still charging) with a need stated 1 minute before its start and then
    one per ``stated`` entry (the last one counts)."""
    ev = TxEvent(TxEventKind.STARTED, StationId(station), start, None, EvseRef(evse), "TAG", seq_no=0)
    async with store.session() as s:
        tx = await s.insert_v16_transaction(new_transaction(ev, key, key, None), start_fingerprint(ev))  # type: ignore[arg-type]
        ended = None if hours is None else start + timedelta(hours=hours)
        await s.save_transaction(dataclasses.replace(tx, ended_at=ended, energy_wh=5_000.0))
        for k, departure in enumerate(stated):
            await s.add_charging_needs(ChargingNeeds(StationId(station), EvseRef(evse),
                                                     start - timedelta(minutes=1) + timedelta(minutes=10 * k),
                                                     energy_amount_wh=10_000.0, departure_time=departure))


async def test_margin_is_learned_per_site_and_cached_an_hour(store: Store) -> None:
    cfg = SmartChargingConfig(departure_margin_learned=True, departure_margin_min_sessions=3,
                              departure_margin_quantile=0.9)
    margins = DepartureMargins()
    for k in range(3):      # three drivers who left exactly when they said
        start = T0 - timedelta(days=k + 1)
        await _session(store, "CP-1", 1, start, 2.0, [start + timedelta(hours=2)], f"kept{k}")
    async with store.session() as s:
        assert await margins.margin_s(s, "site", ["CP-1"], T0, cfg) == 0.0
    start = T0 - timedelta(hours=5)   # a fourth left 40 minutes early: the 0.9 quantile of 4 is that one
    await _session(store, "CP-1", 1, start, 2.0, [start + timedelta(hours=2, minutes=40)], "early")
    async with store.session() as s:
        assert await margins.margin_s(s, "site", ["CP-1"], T0 + timedelta(minutes=30), cfg) == 0.0   # cached
        assert await margins.margin_s(s, "site", ["CP-1"], T0 + timedelta(minutes=61), cfg) == 40 * 60.0
        assert await margins.margin_s(s, "site", ["CP-1"], T0, SmartChargingConfig()) is None   # off by default
