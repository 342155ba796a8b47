"""SiteRepo: the same behaviour from every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from csms.domain.enums import ChargingState, ConnectorStatus
from csms.domain.ids import EvseRef
from csms.domain.records import SiteLoadBucket, StationPower, StationSettings, StatusChange

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)


async def test_stations_of_a_site_and_their_power(store: Any) -> None:
    async with store.session() as s:
        await s.save_station_settings("B", StationSettings(site_id="depot", max_current_a=16.0, phases=1,
                                                          voltage_v=230.0))
        await s.save_station_settings("A", StationSettings(site_id="depot", max_power_w=22000.0))
        await s.save_station_settings("C", StationSettings(site_id="other"))
    async with store.session() as s:
        assert await s.station_ids_of_site("depot") == ["A", "B"]
        assert await s.station_ids_of_site("none") == []
        assert await s.station_power("A") == StationPower("depot", 22000.0)
        assert await s.station_power("B") == StationPower("depot", 16.0 * 230.0)  # A x V x phases
        assert await s.station_power("nope") is None


async def test_site_load_buckets(store: Any) -> None:
    async with store.session() as s:
        for k in range(4):
            await s.add_site_load("depot", T0 + 5 * k * M, T0 + 5 * (k + 1) * M, 1000.0 * k, 50000.0)
        await s.add_site_load("other", T0, T0 + 5 * M, 1.0, None)
        await s.add_site_load("depot", T0 + 5 * M, T0 + 10 * M, 7000.0, None)  # the same bucket again: replaced
    async with store.session() as s:
        rows = await s.site_load("depot", T0 + 7 * M, T0 + 15 * M)  # overlapping [since, until)
        assert await s.site_load("depot", T0, T0 + 20 * M, offset=1, limit=2) == rows
    assert rows == [SiteLoadBucket("depot", T0 + 5 * M, T0 + 10 * M, 7000.0, None),
                    SiteLoadBucket("depot", T0 + 10 * M, T0 + 15 * M, 2000.0, 50000.0)]


async def test_status_changes_start_with_each_connectors_state_at_since(store: Any) -> None:
    async with store.session() as s:
        for sid in ("A", "B", "C"):
            await s.save_station_settings(sid, StationSettings())
        await s.record_status("A", EvseRef(1), ConnectorStatus.AVAILABLE, T0 - 20 * M, None, None)
        await s.record_status("A", EvseRef(1), ConnectorStatus.OCCUPIED, T0 - 10 * M, None, ChargingState.CHARGING)
        await s.record_status("A", EvseRef(2), ConnectorStatus.AVAILABLE, T0 - 5 * M, None, None)
        await s.record_status("A", None, ConnectorStatus.UNAVAILABLE, T0 + M, None, None)  # station-wide: left out
        await s.record_status("B", EvseRef(1), ConnectorStatus.RESERVED, T0 + 2 * M, None, None)
        await s.record_status("A", EvseRef(1), ConnectorStatus.AVAILABLE, T0 + 3 * M, None, None)
        await s.record_status("A", EvseRef(2), ConnectorStatus.OCCUPIED, T0 + 30 * M, None, None)  # after until
        await s.record_status("C", EvseRef(1), ConnectorStatus.OCCUPIED, T0 + M, None, None)  # not asked for
    async with store.session() as s:
        rows = await s.status_changes(["A", "B"], T0, T0 + 20 * M)
    assert rows == [
        StatusChange("A", 1, 1, ConnectorStatus.OCCUPIED, ChargingState.CHARGING, None, T0 - 10 * M),
        StatusChange("A", 2, 1, ConnectorStatus.AVAILABLE, None, None, T0 - 5 * M),
        StatusChange("B", 1, 1, ConnectorStatus.RESERVED, None, None, T0 + 2 * M),
        StatusChange("A", 1, 1, ConnectorStatus.AVAILABLE, None, None, T0 + 3 * M),
    ]


async def test_a_plans_snapshot_reads_only_its_own_site(store: Any) -> None:
    """The snapshot of a site plan: the site's stations, their open transactions and what was stated for them,
    one read each (issue 10: a read of the whole fleet per plan was a third of the CSMS's CPU)."""
    from csms.domain.ids import StationId, transaction_key
    from csms.domain.model import ChargingNeeds, Transaction

    def tx(station: str, n: str, ended: bool = False) -> Transaction:
        return Transaction(key=transaction_key(station, n), station_id=StationId(station), charger_tx_id=n,
                           evse=EvseRef(1), id_token="TAG", started_at=T0, ended_at=T0 + M if ended else None)

    async with store.session() as s:
        for sid, site in (("B", "depot"), ("A", "depot"), ("C", "other")):
            await s.save_station_settings(sid, StationSettings(site_id=site))
        for t in (tx("A", "1"), tx("C", "2"), tx("B", "3", ended=True), tx("B", "4")):
            await s.save_transaction(t)
        for sid, minute in (("A", 0), ("C", 1), ("B", 2), ("A", -5)):
            await s.add_charging_needs(ChargingNeeds(StationId(sid), EvseRef(1), T0 + minute * M,
                                                     energy_amount_wh=1000.0 * minute))
    async with store.session() as s:
        assert [x.id for x in await s.site_stations("depot")] == ["A", "B"]
        assert await s.site_stations("none") == []
        assert [t.charger_tx_id for t in await s.site_active_transactions("depot")] == ["1", "4"]
        needs = await s.site_charging_needs_since("depot", T0)
        assert [(n.station_id, n.received_at) for n in needs] == [("A", T0), ("B", T0 + 2 * M)]  # in order stated
