"""The simulator against a minimal in-test OCPP 1.6 central system (conftest.MiniCsms)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from ocpp.v16 import call

from simulator.charger import AuthorizationRejected, Charger, ChargerConfig
from simulator.clock import SimClock
from simulator.ev import EV, EVModel
from simulator.ocpp.base import ts
from simulator.station import Status, TransitionError

SPEEDUP = 600.0   # 1 simulated minute = 0.1 s


def make(csms, cid: str, **kw) -> Charger:  # type: ignore[no-untyped-def]
    return Charger(ChargerConfig(cid, url=csms.url, protocol="1.6", **kw), SimClock(speedup=SPEEDUP))


@pytest.fixture
async def cp(csms) -> AsyncIterator[Charger]:  # type: ignore[no-untyped-def]
    charger = make(csms, "SIM16-A")
    await charger.connect()
    yield charger
    await charger.close()


def statuses(csms, cid: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [p["status"] for p in csms.state.of(cid, "StatusNotification") if p["connector_id"] == 1]


async def test_full_session(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    boot = await csms.state.wait("SIM16-A", "BootNotification")
    assert boot[0]["charge_point_vendor"] == "GridChargeSim"
    await cp.plug_in(EV(EVModel(max_power_w=11_000), soc=0.2, energy_need_wh=30_000), "TAG1")
    tx_id = await cp.start_charging()
    assert cp.transaction_id == tx_id == "1"
    meters = await csms.state.wait("SIM16-A", "MeterValues", n=3)
    await cp.stop("Local")
    await cp.unplug()
    await cp.flush()

    assert csms.state.of("SIM16-A", "Authorize")[0]["id_tag"] == "TAG1"
    start = csms.state.of("SIM16-A", "StartTransaction")[0]
    assert start["connector_id"] == 1 and start["id_tag"] == "TAG1" and start["meter_start"] == 0
    mv = meters[-1]
    assert mv["transaction_id"] == 1
    values = mv["meter_value"][0]["sampled_value"]
    sampled = {s["measurand"]: s for s in values if "phase" not in s}
    assert set(sampled) == {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "SoC"}
    assert sampled["Energy.Active.Import.Register"]["unit"] == "Wh"
    assert float(sampled["Power.Active.Import"]["value"]) == pytest.approx(11_000)
    assert float(sampled["Current.Import"]["value"]) == pytest.approx(11_000 / 690, abs=0.01)
    per_phase = {s["phase"]: float(s["value"]) for s in values if s["measurand"] == "Current.Import" and "phase" in s}
    assert per_phase == pytest.approx({"L1": 11_000 / 690, "L2": 11_000 / 690, "L3": 11_000 / 690}, abs=0.01)
    stop = csms.state.of("SIM16-A", "StopTransaction")[0]
    assert stop["transaction_id"] == 1 and stop["reason"] == "Local"
    assert stop["meter_stop"] == pytest.approx(cp.energy_wh, abs=1)
    assert stop["meter_stop"] > 3 * 11_000 / 60 * 0.9          # >= ~3 simulated minutes at 11 kW
    contexts = [v["sampled_value"][0]["context"] for v in stop["transaction_data"]]
    assert contexts == ["Transaction.Begin", "Transaction.End"]
    assert statuses(csms, "SIM16-A") == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    assert cp.recorder.sessions[0].energy_wh == pytest.approx(cp.energy_wh)
    assert cp.recorder.errors == []


async def test_profile_limits_measured_power(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    await cp.plug_in(EV(soc=0.1, energy_need_wh=50_000), "TAG1")
    await cp.start_charging()
    await cp.wait_for(lambda: cp.power_w == pytest.approx(11_000))
    now = cp.clock.now()
    # Absolute TxProfile: 10 A for 2 min, then 0 A (SuspendedEVSE) for 2 min, then 6 A.
    profile = {
        "chargingProfileId": 10, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "transactionId": int(cp.transaction_id or 0),
        "chargingSchedule": {"startSchedule": ts(now), "chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 10}, {"startPeriod": 120, "limit": 0}, {"startPeriod": 240, "limit": 6}]},
    }
    res = await csms.call("SIM16-A", call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
    assert res.status == "Accepted"
    assert cp.effective_limit_w == pytest.approx(6_900)         # applied immediately
    assert cp.power_w <= cp.effective_limit_w
    await cp.wait_for(lambda: cp.status is Status.SUSPENDED_EVSE, timeout=5)
    await cp.wait_for(lambda: cp.power_w == pytest.approx(4_140), timeout=5)
    await cp.flush()
    assert statuses(csms, "SIM16-A")[-2:] == ["SuspendedEVSE", "Charging"]

    received_at = cp.received_profiles[0].at
    after = [s for s in cp.recorder.samples if s.at >= received_at]
    assert after and all(s.power_w <= s.limit_w + 1e-6 for s in after)
    assert cp.recorder.max_power_over_limit_w() <= 1e-6
    # Energy during the 0 A window is exactly zero.
    window = [s for s in after if received_at + timedelta(seconds=125) <= s.at <= received_at + timedelta(seconds=235)]
    assert window and max(s.power_w for s in window) == 0

    comp = await csms.call("SIM16-A", call.GetCompositeSchedule(connector_id=1, duration=600, charging_rate_unit="A"))
    assert comp.status == "Accepted"
    assert comp.charging_schedule["charging_schedule_period"][-1]["limit"] == 6
    cleared = await csms.call("SIM16-A", call.ClearChargingProfile(id=10))
    assert cleared.status == "Accepted"
    await cp.wait_for(lambda: cp.power_w == pytest.approx(11_000))
    assert [p.accepted for p in cp.received_profiles] == [True]


async def test_txprofile_rejected_without_transaction_and_fault_injection(csms) -> None:  # type: ignore[no-untyped-def]
    cp = make(csms, "SIM16-B")
    await cp.connect()
    try:
        prof = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1}]}}
        res = await csms.call("SIM16-B", call.SetChargingProfile(connector_id=1, cs_charging_profiles=prof))
        assert res.status == "Rejected"
        default = dict(prof, chargingProfilePurpose="TxDefaultProfile")
        cp.reject_profiles = True
        res = await csms.call("SIM16-B", call.SetChargingProfile(connector_id=0, cs_charging_profiles=default))
        assert res.status == "Rejected"
        cp.reject_profiles = False
        res = await csms.call("SIM16-B", call.SetChargingProfile(connector_id=0, cs_charging_profiles=default))
        assert res.status == "Accepted"
        assert [p.accepted for p in cp.received_profiles] == [False, False, True]
        assert cp.effective_limit_w == 1
    finally:
        await cp.close()


async def test_configuration_and_trigger(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    conf = await csms.call("SIM16-A", call.GetConfiguration(key=["MeterValueSampleInterval", "Nope",
                                                                 "ChargingScheduleAllowedChargingRateUnit",
                                                                 "SupportedFeatureProfiles"]))
    values = {k["key"]: k["value"] for k in conf.configuration_key}
    assert values["MeterValueSampleInterval"] == "60"
    assert values["ChargingScheduleAllowedChargingRateUnit"] == "Current,Power"
    assert "SmartCharging" in values["SupportedFeatureProfiles"]
    assert conf.unknown_key == ["Nope"]
    assert (await csms.call("SIM16-A", call.ChangeConfiguration(key="MeterValueSampleInterval", value="30"))
            ).status == "Accepted"
    assert cp.meter_interval_s == 30
    assert (await csms.call("SIM16-A", call.ChangeConfiguration(key="ChargeProfileMaxStackLevel", value="1"))
            ).status == "Rejected"
    assert (await csms.call("SIM16-A", call.ChangeConfiguration(key="Foo", value="1"))).status == "NotSupported"
    n = len(csms.state.of("SIM16-A", "StatusNotification"))
    assert (await csms.call("SIM16-A", call.TriggerMessage(requested_message="StatusNotification",
                                                           connector_id=1))).status == "Accepted"
    await csms.state.wait("SIM16-A", "StatusNotification", n=n + 1)
    assert (await csms.call("SIM16-A", call.TriggerMessage(requested_message="Heartbeat"))).status == "Accepted"
    await csms.state.wait("SIM16-A", "Heartbeat")
    dt = await csms.call("SIM16-A", call.DataTransfer(vendor_id="x"))
    assert dt.status == "UnknownVendorId"


async def test_remote_start_stop_reservation_availability(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    # Remote start before plug-in: the transaction starts at plug-in, without Authorize.
    assert (await csms.call("SIM16-A", call.RemoteStartTransaction(id_tag="REMOTE", connector_id=1))
            ).status == "Accepted"
    await cp.plug_in(EV(soc=0.5), None)
    await csms.state.wait("SIM16-A", "StartTransaction")
    assert csms.state.of("SIM16-A", "Authorize") == []
    tx = int(cp.transaction_id or 0)
    assert (await csms.call("SIM16-A", call.RemoteStopTransaction(transaction_id=tx))).status == "Accepted"
    stop = (await csms.state.wait("SIM16-A", "StopTransaction"))[0]
    assert stop["reason"] == "Remote"
    assert (await csms.call("SIM16-A", call.RemoteStopTransaction(transaction_id=999))).status == "Rejected"
    await cp.unplug()

    expiry = ts(cp.clock.now() + timedelta(hours=1))
    res = await csms.call("SIM16-A", call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="ALICE",
                                                     reservation_id=5))
    assert res.status == "Accepted" and cp.status is Status.RESERVED
    await cp.plug_in(EV(soc=0.5), "BOB")
    with pytest.raises(TransitionError):
        await cp.start_charging()
    await cp.start_charging(id_token="ALICE")
    start = csms.state.of("SIM16-A", "StartTransaction")[-1]
    assert start["reservation_id"] == 5
    await cp.stop()
    await cp.unplug()
    res = await csms.call("SIM16-A", call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="A", reservation_id=6))
    assert (await csms.call("SIM16-A", call.CancelReservation(reservation_id=6))).status == "Accepted"
    assert cp.status is Status.AVAILABLE

    assert (await csms.call("SIM16-A", call.ChangeAvailability(connector_id=1, type="Inoperative"))
            ).status == "Accepted"
    assert cp.status is Status.UNAVAILABLE
    assert (await csms.call("SIM16-A", call.RemoteStartTransaction(id_tag="X", connector_id=1))).status == "Rejected"
    assert (await csms.call("SIM16-A", call.ChangeAvailability(connector_id=0, type="Operative"))).status == "Accepted"
    assert (await csms.call("SIM16-A", call.UnlockConnector(connector_id=1))).status == "Unlocked"
    await cp.flush()
    assert statuses(csms, "SIM16-A")[-2:] == ["Unavailable", "Available"]


async def test_blocked_token(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    csms.state.blocked_tokens.add("BAD")
    await cp.plug_in(EV(), "BAD")
    with pytest.raises(AuthorizationRejected):
        await cp.start_charging()
    assert cp.transaction_id is None


async def test_reset_reboots_and_boot_pending_is_retried(csms) -> None:  # type: ignore[no-untyped-def]
    csms.state.boot_pending_first.add("SIM16-C")
    cp = make(csms, "SIM16-C", password="s3cret")
    await cp.connect()
    try:
        assert len(csms.state.of("SIM16-C", "BootNotification")) == 2       # Pending, then Accepted
        assert csms.state.auth_headers["SIM16-C"].startswith("Basic ")
        await cp.plug_in(EV(), "T")
        await cp.start_charging()
        assert (await csms.call("SIM16-C", call.Reset(type="Hard"))).status == "Accepted"
        await csms.state.wait("SIM16-C", "BootNotification", n=3)
        stop = (await csms.state.wait("SIM16-C", "StopTransaction"))[0]
        assert stop["reason"] == "HardReset"
        await cp.wait_booted()
        assert cp.boot_count == 2
    finally:
        await cp.close()


async def test_disconnect_queues_stop_and_reconnects(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    await cp.plug_in(EV(), "T")
    await cp.start_charging()
    await cp.disconnect(offline_s=120)                    # 0.2 s real
    await cp.wait_for(lambda: not cp.online, timeout=2)
    await cp.stop("Local")                                 # queued while offline
    assert csms.state.of("SIM16-A", "StopTransaction") == []
    await cp.wait_booted(5)
    stop = (await csms.state.wait("SIM16-A", "StopTransaction"))[0]
    assert stop["transaction_id"] == 1
    assert len(csms.state.of("SIM16-A", "BootNotification")) == 2
    await asyncio.sleep(0)


async def test_station_max_shared_by_two_connectors(csms) -> None:  # type: ignore[no-untyped-def]
    cp = make(csms, "SIM16-D", evse_count=2)
    await cp.connect()
    try:
        for evse_id in (1, 2):
            await cp.plug_in(EV(soc=0.2), f"T{evse_id}", evse_id=evse_id)
            await cp.start_charging(evse_id)
        prof = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {"startSchedule": ts(cp.clock.now()), "chargingRateUnit": "A",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}}
        res = await csms.call("SIM16-D", call.SetChargingProfile(connector_id=0, cs_charging_profiles=prof))
        assert res.status == "Accepted"
        assert cp.total_power_w == pytest.approx(16 * 230 * 3)
        assert cp.evse_power_w(1) == pytest.approx(cp.evse_power_w(2))
        await cp.stop(evse_id=2)
        cp.advance()
        assert cp.evse_power_w(1) == pytest.approx(11_000)        # EV max; the cap is 11 040 W
        connectors = {p["connector_id"] for p in csms.state.of("SIM16-D", "StatusNotification")}
        assert connectors == {0, 1, 2}
    finally:
        await cp.close()
