"""The simulator against a minimal in-test OCPP 2.0.1 central system (conftest.MiniCsms)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from ocpp.v201 import call

from simulator.charger import Charger, ChargerConfig
from simulator.clock import SimClock
from simulator.ev import EV, EVModel
from simulator.ocpp.base import ts
from simulator.station import Status

SPEEDUP = 600.0
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:\d\d)$")


def make(csms, cid: str, **kw) -> Charger:  # type: ignore[no-untyped-def]
    return Charger(ChargerConfig(cid, url=csms.url, protocol="2.0.1", **kw), SimClock(speedup=SPEEDUP))


@pytest.fixture
async def cp(csms) -> AsyncIterator[Charger]:  # type: ignore[no-untyped-def]
    charger = make(csms, "SIM201-A")
    await charger.connect()
    yield charger
    await charger.close()


def tx_events(csms, cid: str = "SIM201-A") -> list[dict]:  # type: ignore[no-untyped-def]
    return csms.state.of(cid, "TransactionEvent")


async def test_full_session(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    departure = cp.clock.now() + timedelta(hours=3)
    ev = EV(EVModel(max_power_w=7_360, phases=1), soc=0.3, energy_need_wh=12_000, departure=departure)
    await cp.plug_in(ev, "TAG201")
    tx_id = await cp.start_charging()
    needs = (await csms.state.wait("SIM201-A", "NotifyEVChargingNeeds"))[0]
    await csms.state.wait("SIM201-A", "TransactionEvent", n=5)      # Started, ChargingStateChanged, 3 periodic
    await cp.stop("Local")
    await cp.unplug()
    await cp.flush()

    boot = csms.state.of("SIM201-A", "BootNotification")[0]
    assert boot["reason"] == "PowerUp" and boot["charging_station"]["vendor_name"] == "GridChargeSim"
    assert csms.state.of("SIM201-A", "Authorize")[0]["id_token"] == {"id_token": "TAG201", "type": "ISO14443"}
    events = tx_events(csms)
    assert [e["seq_no"] for e in events] == list(range(len(events)))
    assert all(e["transaction_info"]["transaction_id"] == tx_id for e in events)
    assert all(TS.match(e["timestamp"]) for e in events)
    started, ended = events[0], events[-1]
    assert started["event_type"] == "Started" and started["trigger_reason"] == "Authorized"
    assert started["id_token"]["id_token"] == "TAG201" and started["evse"] == {"id": 1, "connector_id": 1}
    assert events[1]["trigger_reason"] == "ChargingStateChanged"
    assert events[1]["transaction_info"]["charging_state"] == "Charging"
    periodic = [e for e in events if e["trigger_reason"] == "MeterValuePeriodic"]
    assert len(periodic) >= 3
    values = periodic[-1]["meter_value"][0]["sampled_value"]
    sampled = {s["measurand"]: s for s in values if "phase" not in s}
    assert set(sampled) == {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "SoC"}
    assert sampled["Power.Active.Import"]["value"] == pytest.approx(7_360)
    assert sampled["Current.Import"]["value"] == pytest.approx(32, abs=0.01)
    # per phase of the three-phase EVSE: the one-phase car loads L1 only (how a CSMS can tell its phases)
    per_phase = {s["phase"]: s["value"] for s in values if s["measurand"] == "Current.Import" and "phase" in s}
    assert per_phase == {"L1": pytest.approx(32, abs=0.01), "L2": 0.0, "L3": 0.0}
    assert started["number_of_phases_used"] == 1
    assert sampled["Energy.Active.Import.Register"]["unit_of_measure"] == {"unit": "Wh"}
    assert ended["event_type"] == "Ended" and ended["trigger_reason"] == "StopAuthorized"
    assert ended["transaction_info"]["stopped_reason"] == "Local"
    end_energy = ended["meter_value"][0]["sampled_value"][0]
    assert end_energy["context"] == "Transaction.End" and end_energy["value"] == pytest.approx(cp.energy_wh, abs=0.1)

    ac = needs["charging_needs"]["ac_charging_parameters"]
    assert needs["evse_id"] == 1
    assert needs["charging_needs"]["requested_energy_transfer"] == "AC_single_phase"
    assert ac["energy_amount"] == 12_000 and ac["ev_max_current"] == 32 and ac["ev_max_voltage"] == 230
    assert needs["charging_needs"]["departure_time"] == ts(departure)

    connector = [s["connector_status"] for s in csms.state.of("SIM201-A", "StatusNotification")]
    assert connector == ["Available", "Occupied", "Available"]


async def test_profiles_cap_power(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    await cp.plug_in(EV(soc=0.1, energy_need_wh=60_000), "TAG")
    tx_id = await cp.start_charging()
    await cp.wait_for(lambda: cp.power_w == pytest.approx(11_000))

    no_tx = {"id": 1, "stack_level": 0, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative",
             "charging_schedule": [{"id": 1, "charging_rate_unit": "W",
                                    "charging_schedule_period": [{"start_period": 0, "limit": 5000}]}]}
    res = await csms.call("SIM201-A", call.SetChargingProfile(evse_id=1, charging_profile=no_tx))
    assert res.status == "Rejected"                              # 2.0.1 TxProfile needs the transactionId

    tx_prof = dict(no_tx, transaction_id=tx_id)
    res = await csms.call("SIM201-A", call.SetChargingProfile(evse_id=1, charging_profile=tx_prof))
    assert res.status == "Accepted"
    assert cp.power_w == pytest.approx(5_000) and cp.effective_limit_w == pytest.approx(5_000)

    station = {"id": 2, "stack_level": 0, "charging_profile_purpose": "ChargingStationMaxProfile",
               "charging_profile_kind": "Absolute",
               "charging_schedule": [{"id": 2, "charging_rate_unit": "A", "start_schedule": ts(cp.clock.now()),
                                      "charging_schedule_period": [{"start_period": 0, "limit": 4},
                                                                   {"start_period": 180, "limit": 16}]}]}
    res = await csms.call("SIM201-A", call.SetChargingProfile(evse_id=0, charging_profile=station))
    assert res.status == "Accepted"
    assert cp.power_w == pytest.approx(4 * 230 * 3)
    comp = await csms.call("SIM201-A", call.GetCompositeSchedule(duration=600, evse_id=1, charging_rate_unit="W"))
    periods = comp.schedule["charging_schedule_period"]
    assert [p["limit"] for p in periods] == [2760.0, 5000.0]
    assert periods[1]["start_period"] == pytest.approx(180, abs=30)   # simulated time moved on meanwhile
    await cp.wait_for(lambda: cp.power_w == pytest.approx(5_000), timeout=5)
    await csms.state.wait("SIM201-A", "TransactionEvent", n=6)
    assert cp.recorder.max_power_over_limit_w() <= 1e-6
    since = cp.received_profiles[0].at
    for e in tx_events(csms):
        for mv in e.get("meter_value") or []:
            if ts(since) < mv["timestamp"]:
                power = [s for s in mv["sampled_value"] if s["measurand"] == "Power.Active.Import"]
                assert not power or power[0]["value"] <= 5_000 + 1e-6

    res = await csms.call("SIM201-A", call.ClearChargingProfile(
        charging_profile_criteria={"charging_profile_purpose": "TxProfile"}))
    assert res.status == "Accepted"
    await cp.wait_for(lambda: cp.power_w == pytest.approx(11_000))


async def test_request_start_stop_and_variables(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    await cp.plug_in(EV(soc=0.5), None)
    res = await csms.call("SIM201-A", call.RequestStartTransaction(
        id_token={"id_token": "R1", "type": "Central"}, remote_start_id=77, evse_id=1,
        charging_profile={"id": 5, "stack_level": 0, "charging_profile_purpose": "TxProfile",
                          "charging_profile_kind": "Relative",
                          "charging_schedule": [{"id": 5, "charging_rate_unit": "A",
                                                 "charging_schedule_period": [{"start_period": 0, "limit": 8}]}]}))
    assert res.status == "Accepted"
    await cp.wait_for(lambda: cp.transaction_id is not None and cp.received_profiles)
    started = (await csms.state.wait("SIM201-A", "TransactionEvent"))[0]
    assert started["trigger_reason"] == "RemoteStart"
    assert started["transaction_info"]["remote_start_id"] == 77
    await cp.wait_for(lambda: cp.power_w == pytest.approx(8 * 230 * 3))
    res = await csms.call("SIM201-A", call.RequestStopTransaction(transaction_id=cp.transaction_id or ""))
    assert res.status == "Accepted"
    await cp.wait_for(lambda: any(e["event_type"] == "Ended" for e in tx_events(csms)))
    ended = [e for e in tx_events(csms) if e["event_type"] == "Ended"][0]
    assert ended["trigger_reason"] == "RemoteStop" and ended["transaction_info"]["stopped_reason"] == "Remote"

    got = await csms.call("SIM201-A", call.GetVariables(get_variable_data=[
        {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}},
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}},
        {"component": {"name": "Nope"}, "variable": {"name": "X"}}]))
    assert [r["attribute_status"] for r in got.get_variable_result] == ["Accepted", "UnknownVariable",
                                                                        "UnknownComponent"]
    assert got.get_variable_result[0]["attribute_value"] == "A,W"
    res = await csms.call("SIM201-A", call.SetVariables(set_variable_data=[
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}, "attribute_value": "15"}]))
    assert res.set_variable_result[0]["attribute_status"] == "Accepted" and cp.meter_interval_s == 15


async def test_availability_trigger_reset(csms, cp: Charger) -> None:  # type: ignore[no-untyped-def]
    res = await csms.call("SIM201-A", call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1}))
    assert res.status == "Accepted" and cp.status is Status.UNAVAILABLE
    res = await csms.call("SIM201-A", call.ChangeAvailability(operational_status="Operative"))
    assert res.status == "Accepted" and cp.status is Status.AVAILABLE
    expiry = ts(cp.clock.now() + timedelta(hours=1))
    res = await csms.call("SIM201-A", call.ReserveNow(id=3, expiry_date_time=expiry,
                                                      id_token={"id_token": "A", "type": "Central"}, evse_id=1))
    assert res.status == "Accepted" and cp.status is Status.RESERVED
    assert (await csms.call("SIM201-A", call.CancelReservation(reservation_id=3))).status == "Accepted"
    res = await csms.call("SIM201-A", call.TriggerMessage(requested_message="StatusNotification", evse={"id": 1}))
    assert res.status == "Accepted"
    res = await csms.call("SIM201-A", call.UnlockConnector(evse_id=1, connector_id=1))
    assert res.status == "Unlocked"
    res = await csms.call("SIM201-A", call.Reset(type="Immediate"))
    assert res.status == "Accepted"
    boots = await csms.state.wait("SIM201-A", "BootNotification", n=2)
    assert boots[1]["reason"] == "RemoteReset"
    await cp.wait_booted()
    await cp.flush()
    statuses = [s["connector_status"] for s in csms.state.of("SIM201-A", "StatusNotification")]
    assert statuses == ["Available", "Unavailable", "Available", "Reserved", "Available", "Available", "Available"]
