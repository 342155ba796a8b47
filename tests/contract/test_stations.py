"""StationRepo: the same behaviour from every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.domain.enums import ChargingState, ConnectorStatus, ProtocolVersion, RegistrationStatus
from csms.domain.ids import EvseRef
from csms.domain.model import StationInfo
from csms.domain.records import StationAccessRecord, StationEvent, StationSettings, StatusChange

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SETTINGS = StationSettings(site_id="depot", registration=RegistrationStatus.PENDING, registration_by_operator=True,
                           password_hash="h1", security_profile=2, max_current_a=16.0, max_power_w=11000.0,
                           min_current_a=8.0, phases=1, voltage_v=240.0, from_config=True)


async def test_settings_round_trip_and_shape_the_station(store: Any) -> None:
    async with store.session() as s:
        assert await s.station("A") is None and await s.station_settings("A") is None
        await s.save_station_settings("B", StationSettings())
        await s.save_station_settings("A", SETTINGS)
    async with store.session() as s:
        assert await s.station_settings("A") == SETTINGS
        assert await s.station_settings("B") == StationSettings()
        st = await s.station("A")
        assert [x.id for x in await s.stations()] == ["A", "B"]
    assert st is not None
    assert (st.id, st.site_id, st.registration, st.max_current_a, st.phases, st.voltage_v) == (
        "A", "depot", RegistrationStatus.PENDING, 16.0, 1, 240.0)
    assert (st.online, st.info, st.protocol, st.last_seen) == (False, None, None, None)


async def test_saving_settings_again_replaces_them_and_keeps_what_the_charger_reported(store: Any) -> None:
    info = StationInfo("ACME", "X1", "SN1", "1.0")
    async with store.session() as s:
        await s.save_station_settings("A", SETTINGS)
        await s.record_boot("A", info, "ocpp1.6", T0)
        await s.set_online("A", True, T0)
    changed = replace(SETTINGS, site_id="other", password_hash=None, security_profile=None, max_power_w=None)
    async with store.session() as s:
        await s.save_station_settings("A", changed)
    async with store.session() as s:
        assert await s.station_settings("A") == changed
        st = await s.station("A")
    assert st is not None and st.info == info and st.online and st.protocol is ProtocolVersion.V16
    assert st.site_id == "other"


async def test_station_access(store: Any) -> None:
    async with store.session() as s:
        await s.save_station_settings("A", SETTINGS)
        assert await s.station_access("A") == StationAccessRecord("h1", 2, RegistrationStatus.PENDING, "depot")
        assert await s.station_access("nope") is None


async def test_boot_online_touch_and_offline(store: Any) -> None:
    async with store.session() as s:
        await s.save_station_settings("A", StationSettings())
        await s.save_station_settings("B", StationSettings())
        await s.record_boot("A", StationInfo("ACME", "X1"), "ocpp2.0.1", T0)
        await s.record_boot("nope", StationInfo("ACME", "X1"), "ocpp2.0.1", T0)  # unknown: nothing happens
        await s.set_online("A", True, T0 + timedelta(seconds=1), "ocpp2.0.1")
        await s.set_online("B", True, T0, None)
    async with store.session() as s:
        a, b = await s.station("A"), await s.station("B")
        assert a is not None and a.info == StationInfo("ACME", "X1") and a.protocol is ProtocolVersion.V201
        assert a.online and a.last_seen == T0 + timedelta(seconds=1)
        assert b is not None and b.online and b.protocol is None and b.info is None
        await s.set_online("A", False, T0 + timedelta(seconds=2))  # no protocol given: the last one stays
        await s.touch({"B": T0 + timedelta(minutes=5), "gone": T0})  # a station deleted meanwhile: skipped
    async with store.session() as s:
        a, b = await s.station("A"), await s.station("B")
        assert a is not None and not a.online and a.protocol is ProtocolVersion.V201
        assert b is not None and b.last_seen == T0 + timedelta(minutes=5)
        await s.mark_all_offline()
    async with store.session() as s:
        assert [st.online for st in await s.stations()] == [False, False]


async def test_connectors_keep_the_newest_status_and_history_keeps_all(store: Any) -> None:
    async with store.session() as s:
        for sid in ("A", "B"):
            await s.save_station_settings(sid, StationSettings())
        await s.record_status("A", EvseRef(2), ConnectorStatus.AVAILABLE, T0, None, None)
        await s.record_status("A", EvseRef(1), ConnectorStatus.OCCUPIED, T0, None, ChargingState.CHARGING)
        # a late, queued notification with an older timestamp must not overwrite the newer status
        await s.record_status("A", EvseRef(1), ConnectorStatus.AVAILABLE, T0 - timedelta(minutes=1), None, None)
        await s.record_status("A", None, ConnectorStatus.UNAVAILABLE, T0, "PowerLoss", None)  # the station
        await s.record_status("B", EvseRef(1, 2), ConnectorStatus.FAULTED, T0, "GroundFailure", None)
    async with store.session() as s:
        conns = await s.connectors()
        only_a = await s.connectors("A")
        hist = await s.status_history("A")
        page = await s.status_history("A", limit=2, offset=1)
    assert [(c.station_id, c.evse, c.status, c.error_code) for c in conns] == [
        ("A", EvseRef(1), ConnectorStatus.OCCUPIED, None), ("A", EvseRef(2), ConnectorStatus.AVAILABLE, None),
        ("B", EvseRef(1, 2), ConnectorStatus.FAULTED, "GroundFailure")]
    assert [c.evse for c in only_a] == [EvseRef(1), EvseRef(2)] and conns[0].at == T0
    assert hist == [  # newest first, the station-wide one included
        StatusChange("A", None, None, ConnectorStatus.UNAVAILABLE, None, "PowerLoss", T0),
        StatusChange("A", 1, 1, ConnectorStatus.AVAILABLE, None, None, T0 - timedelta(minutes=1)),
        StatusChange("A", 1, 1, ConnectorStatus.OCCUPIED, ChargingState.CHARGING, None, T0),
        StatusChange("A", 2, 1, ConnectorStatus.AVAILABLE, None, None, T0)]
    assert page == hist[1:3]


async def test_deleting_a_station_takes_its_connectors(store: Any) -> None:
    async with store.session() as s:
        await s.save_station_settings("A", StationSettings())
        await s.record_status("A", EvseRef(1), ConnectorStatus.AVAILABLE, T0, None, None)
    async with store.session() as s:
        assert await s.delete_station("A") is True
        assert await s.delete_station("A") is False
    async with store.session() as s:
        assert await s.station("A") is None and await s.connectors("A") == []


async def test_a_session_reads_the_contacts_and_statuses_it_wrote(store: Any) -> None:
    """Boots, contacts and connector statuses wait for the commit in the SQL stores (one hop for a batch):
    whatever the same session reads afterwards sees them, in the order they were made."""
    async with store.session() as s:
        await s.save_station_settings("A", StationSettings())
    async with store.session() as s:
        await s.set_online("A", True, T0, "ocpp1.6")
        await s.record_boot("A", StationInfo("ACME", "X1", "SN-1", "1.0"), "ocpp1.6", T0)
        await s.record_status("A", EvseRef(1), ConnectorStatus.OCCUPIED, T0, None, None)
        a = await s.station("A")
        assert a is not None and a.online and a.info == StationInfo("ACME", "X1", "SN-1", "1.0")
        assert [(c.evse, c.status) for c in await s.connectors("A")] == [(EvseRef(1), ConnectorStatus.OCCUPIED)]
        await s.set_online("A", False, T0 + timedelta(seconds=1))
        await s.set_online("A", True, T0 + timedelta(seconds=2), "ocpp2.0.1")
        # a re-boot reports what it has now: a serial number it no longer sends is not kept
        await s.record_boot("A", StationInfo("ACME", "X2"), "ocpp2.0.1", T0 + timedelta(seconds=2))
        await s.record_status("A", EvseRef(1), ConnectorStatus.AVAILABLE, T0 + timedelta(seconds=2), None, None)
    async with store.session() as s:
        a = await s.station("A")
        assert a is not None and a.online and a.protocol is ProtocolVersion.V201
        assert a.info == StationInfo("ACME", "X2") and a.last_seen == T0 + timedelta(seconds=2)
        assert [c.status for c in await s.connectors("A")] == [ConnectorStatus.AVAILABLE]


async def test_a_status_and_then_a_delete_in_one_session_leave_no_connector(store: Any) -> None:
    async with store.session() as s:
        await s.save_station_settings("A", StationSettings())
    async with store.session() as s:
        await s.record_status("A", EvseRef(1), ConnectorStatus.AVAILABLE, T0, None, None)
        await s.set_online("A", True, T0)
        assert await s.delete_station("A") is True
    async with store.session() as s:
        assert await s.station("A") is None and await s.connectors("A") == []


async def test_station_events_newest_first(store: Any) -> None:
    async with store.session() as s:
        await s.add_station_event("A", "DataTransfer", {"vendor": "x", "data": [1, 2]}, T0)
        await s.add_station_event("A", "FirmwareStatusNotification", {"status": "Installed"}, T0)
        await s.add_station_event("B", "SecurityEventNotification", {}, T0)
    async with store.session() as s:
        events = await s.station_events("A")
        assert await s.station_events("A", limit=1, offset=1) == events[1:]
        assert await s.station_events("C") == []
    assert events == [StationEvent("FirmwareStatusNotification", {"status": "Installed"}, T0),
                      StationEvent("DataTransfer", {"vendor": "x", "data": [1, 2]}, T0)]
