"""A full charging session per version, and every charger-initiated action answered schema-valid."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.v16 import call as c16
from ocpp.v201 import call as c201

from csms.domain.enums import ChargingState, ConnectorStatus, Measurand, RateUnit, TxEventKind
from csms.domain.ids import EvseRef

from .conftest import Env

TS = "2026-11-27T05:00:00Z"


async def test_v16_session(env: Env) -> None:
    ev = env.events
    cp = await env.client("CP1", "1.6")
    boot = await cp.call(c16.BootNotification(charge_point_vendor="ACME", charge_point_model="X1",
                                              charge_point_serial_number="SN1", firmware_version="1.2"), suppress=False)
    assert (boot.status, boot.interval, boot.current_time) == ("Accepted", 300, "2026-11-27T05:15:13.123Z")
    await ev.wait_for("ready")  # after the Accepted answer was sent
    (_, info, _), = ev.named("booted")
    assert (info.vendor, info.model, info.serial_number, info.firmware_version) == ("ACME", "X1", "SN1", "1.2")

    await cp.call(c16.StatusNotification(connector_id=1, error_code="NoError", status="Preparing", timestamp=TS),
                  suppress=False)
    (_, evse, status, at, err, state), = ev.named("status_changed")
    assert (evse, status, err, state) == (EvseRef(1, 1), ConnectorStatus.OCCUPIED, None, ChargingState.EV_CONNECTED)

    assert (await cp.call(c16.Authorize(id_tag="TAG"), suppress=False)).id_tag_info == {"status": "Accepted"}
    assert (await cp.call(c16.Authorize(id_tag="BAD"), suppress=False)).id_tag_info == {"status": "Blocked"}

    start = await cp.call(c16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=1000, timestamp=TS),
                          suppress=False)
    assert start.transaction_id == 101 and start.id_tag_info == {"status": "Accepted"}

    await cp.call(c16.MeterValues(connector_id=1, transaction_id=101, meter_value=[{"timestamp": TS, "sampledValue": [
        {"value": "2.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
        {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import"}]}]), suppress=False)
    await cp.call(c16.MeterValues(connector_id=0, meter_value=[{"timestamp": TS, "sampledValue": [
        {"value": "230", "unit": "V", "measurand": "Voltage"}]}]), suppress=False)

    stop = await cp.call(c16.StopTransaction(meter_stop=12000, timestamp=TS, transaction_id=101, id_tag="TAG",
                                             reason="EVDisconnected", transaction_data=[{"timestamp": TS, "sampledValue": [
                                                 {"value": "12000"}]}]), suppress=False)
    assert stop.id_tag_info == {"status": "Accepted"}

    txs = [a[0] for a in ev.named("transaction")]
    assert [t.kind for t in txs] == [TxEventKind.STARTED, TxEventKind.UPDATED, TxEventKind.ENDED]
    assert txs[1].charger_tx_id == "101" and txs[1].samples[0].get(Measurand.ENERGY_IMPORT_WH) == 2500.0
    assert txs[1].samples[0].get(Measurand.POWER_IMPORT_W) == 7200.0
    assert txs[2].meter_stop_wh == 12000.0 and txs[2].stop_reason == "EVDisconnected"
    assert txs[2].samples[0].get(Measurand.ENERGY_IMPORT_WH) == 12000.0
    (_, evse0, tx_id, samples), = ev.named("meter_values")
    assert evse0 is None and tx_id is None and samples[0].get(Measurand.VOLTAGE_V) == 230.0
    assert ev.named("live_cost") == []  # 1.6 has no totalCost: billing is never asked on its path


async def test_v201_session(env: Env) -> None:
    ev = env.events
    ev.total_cost = 4.2
    cp = await env.client("CP2", "2.0.1")
    boot = await cp.call(c201.BootNotification(charging_station={"vendorName": "ACME", "model": "Y2",
                                                                 "serialNumber": "SN2", "firmwareVersion": "2.0"},
                                               reason="PowerUp"), suppress=False)
    assert (boot.status, boot.interval, boot.current_time) == ("Accepted", 300, "2026-11-27T05:15:13.123Z")
    await ev.wait_for("ready")
    (_, info, reason), = ev.named("booted")
    assert (info.vendor, info.serial_number, reason) == ("ACME", "SN2", "PowerUp")

    await cp.call(c201.StatusNotification(timestamp=TS, connector_status="Occupied", evse_id=1, connector_id=1),
                  suppress=False)
    assert ev.named("status_changed")[0][1:3] == (EvseRef(1, 1), ConnectorStatus.OCCUPIED)
    auth = await cp.call(c201.Authorize(id_token={"idToken": "TAG", "type": "ISO14443"}), suppress=False)
    assert auth.id_token_info == {"status": "Accepted"}

    tx = {"transactionId": "T-1", "chargingState": "Charging"}
    started = await cp.call(c201.TransactionEvent(
        event_type="Started", timestamp=TS, trigger_reason="Authorized", seq_no=0, transaction_info=tx,
        id_token={"idToken": "TAG", "type": "ISO14443"}, evse={"id": 1, "connectorId": 1}), suppress=False)
    assert started.id_token_info == {"status": "Accepted"} and started.total_cost == 4.2
    updated = await cp.call(c201.TransactionEvent(
        event_type="Updated", timestamp=TS, trigger_reason="MeterValuePeriodic", seq_no=1, transaction_info=tx,
        meter_value=[{"timestamp": TS, "sampledValue": [
            {"value": 25, "unitOfMeasure": {"unit": "Wh", "multiplier": 2}},
            {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}}]}]), suppress=False)
    assert updated.id_token_info is None
    ended = await cp.call(c201.TransactionEvent(
        event_type="Ended", timestamp=TS, trigger_reason="EVCommunicationLost", seq_no=2, offline=True,
        transaction_info={"transactionId": "T-1", "stoppedReason": "EVDisconnected"}), suppress=False)
    assert ended.total_cost == 4.2
    assert [a[0] for a in ev.named("live_cost")] == ["CP2/T-1"] * 3  # asked by the 2.0.1 adapter

    txs = [a[0] for a in ev.named("transaction")]
    assert [(t.kind, t.seq_no) for t in txs] == [(TxEventKind.STARTED, 0), (TxEventKind.UPDATED, 1),
                                                 (TxEventKind.ENDED, 2)]
    assert txs[0].charging_state is ChargingState.CHARGING and txs[0].evse == EvseRef(1, 1)
    assert txs[1].samples[0].get(Measurand.ENERGY_IMPORT_WH) == 2500.0
    assert txs[1].samples[0].get(Measurand.POWER_IMPORT_W) == 7200.0
    assert txs[2].offline and txs[2].stop_reason == "EVDisconnected"

    await cp.call(c201.MeterValues(evse_id=1, meter_value=[{"timestamp": TS, "sampledValue": [{"value": 3}]}]),
                  suppress=False)
    assert ev.named("meter_values")[0][1] == EvseRef(1, 1)
    needs = await cp.call(c201.NotifyEVChargingNeeds(evse_id=1, charging_needs={
        "requestedEnergyTransfer": "AC_three_phase", "departureTime": "2026-11-27T16:00:00Z",
        "acChargingParameters": {"energyAmount": 20000, "evMinCurrent": 6, "evMaxCurrent": 32, "evMaxVoltage": 400}}),
        suppress=False)
    assert needs.status == "Accepted"
    (n,), = ev.named("charging_needs")
    assert (n.energy_amount_wh, n.ev_max_current_a, n.ev_min_current_a) == (20000.0, 32.0, 6.0)
    await cp.call(c201.NotifyChargingLimit(charging_limit={"chargingLimitSource": "EMS"}, evse_id=1,
                                           charging_schedule=[{"id": 1, "chargingRateUnit": "A",
                                                               "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                           "limit": 10}]}]),
                  suppress=False)
    await cp.call(c201.ClearedChargingLimit(charging_limit_source="EMS", evse_id=1), suppress=False)
    assert [a[1:] for a in ev.named("charging_limit")] == [(EvseRef(1, 1), "EMS", 10.0, RateUnit.AMPS),
                                                          (EvseRef(1, 1), "EMS", None, None)]


V16_ACTIONS: list[Any] = [
    c16.BootNotification(charge_point_vendor="V", charge_point_model="M"),
    c16.Heartbeat(),
    c16.StatusNotification(connector_id=0, error_code="NoError", status="Available"),
    c16.Authorize(id_tag="TAG"),
    c16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0, timestamp=TS),
    c16.StopTransaction(meter_stop=10, timestamp=TS, transaction_id=101),
    c16.MeterValues(connector_id=1, meter_value=[{"timestamp": TS, "sampledValue": [{"value": "1"}]}]),
    c16.DataTransfer(vendor_id="acme", message_id="x", data="y"),
    c16.DiagnosticsStatusNotification(status="Uploaded"),
    c16.FirmwareStatusNotification(status="Installed"),
    c16.SecurityEventNotification(type="StartupOfTheDevice", timestamp=TS, tech_info="boot"),
    c16.LogStatusNotification(status="Uploaded", request_id=1),
]

V201_ACTIONS: list[Any] = [
    c201.BootNotification(charging_station={"vendorName": "V", "model": "M"}, reason="PowerUp"),
    c201.Heartbeat(),
    c201.StatusNotification(timestamp=TS, connector_status="Available", evse_id=1, connector_id=1),
    c201.Authorize(id_token={"idToken": "TAG", "type": "ISO14443"}),
    c201.TransactionEvent(event_type="Started", timestamp=TS, trigger_reason="CablePluggedIn", seq_no=0,
                          transaction_info={"transactionId": "T"}),
    c201.MeterValues(evse_id=1, meter_value=[{"timestamp": TS, "sampledValue": [{"value": 1}]}]),
    c201.NotifyEVChargingNeeds(evse_id=1, charging_needs={"requestedEnergyTransfer": "DC", "dcChargingParameters": {
        "evMaxCurrent": 100, "evMaxVoltage": 500, "evMaxPower": 50000}}),
    c201.NotifyChargingLimit(charging_limit={"chargingLimitSource": "SO"}),
    c201.ClearedChargingLimit(charging_limit_source="SO"),
    c201.NotifyReport(request_id=1, generated_at=TS, seq_no=0, report_data=[{
        "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
        "variableAttribute": [{"value": "300"}]}]),
    c201.NotifyEvent(generated_at=TS, seq_no=0, event_data=[{
        "eventId": 1, "timestamp": TS, "trigger": "Alerting", "actualValue": "x", "eventNotificationType": "HardWiredMonitor",
        "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]),
    c201.SecurityEventNotification(type="StartupOfTheDevice", timestamp=TS),
    c201.FirmwareStatusNotification(status="Installed"),
    c201.LogStatusNotification(status="Uploaded", request_id=1),
    c201.ReportChargingProfiles(request_id=1, charging_limit_source="CSO", evse_id=1, charging_profile=[{
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16}]}]}]),
    c201.DataTransfer(vendor_id="acme", message_id="x", data={"k": 1}),
]


@pytest.mark.parametrize("version, payload", [("1.6", p) for p in V16_ACTIONS] + [("2.0.1", p) for p in V201_ACTIONS],
                         ids=lambda x: type(x).__name__ if not isinstance(x, str) else x)
async def test_every_listed_action_is_answered(env: Env, version: str, payload: Any) -> None:
    cp = await env.client("CP1", version)
    # The client validates the answer against the schema; suppress=False raises on a CALLERROR.
    assert await cp.call(payload, suppress=False) is not None


async def test_notices_carry_kind_and_detail(env: Env) -> None:
    cp = await env.client("CP1", "1.6")
    await cp.call(c16.FirmwareStatusNotification(status="Installed"), suppress=False)
    answer = await cp.call(c16.DataTransfer(vendor_id="acme", data="hello"), suppress=False)
    assert answer.status == "UnknownVendorId"
    assert [a[1:] for a in env.events.named("notice")] == [
        ("FirmwareStatusNotification", {"status": "Installed"}),
        ("DataTransfer", {"vendor_id": "acme", "data": "hello"})]


@pytest.mark.parametrize("version, payload", [
    ("1.6", c16.GetConfiguration()),  # a CSMS->charger action sent the wrong way
    ("2.0.1", c201.GetVariables(get_variable_data=[{"component": {"name": "X"}, "variable": {"name": "Y"}}])),
])
async def test_unhandled_action_is_not_implemented(env: Env, version: str, payload: Any) -> None:
    cp = await env.client("CP1", version)
    with pytest.raises(OcppNotImplemented):
        await cp.call(payload, suppress=False)
    assert await cp.call(c16.Heartbeat() if version == "1.6" else c201.Heartbeat(), suppress=False)


async def test_domain_error_becomes_callerror_and_connection_survives(env: Env) -> None:
    from ocpp.exceptions import InternalError, PropertyConstraintViolationError

    from csms.domain.errors import UnknownTransaction
    cp = await env.client("CP1", "1.6")
    env.events.fail["transaction"] = UnknownTransaction("CP1/999")
    with pytest.raises(PropertyConstraintViolationError):
        await cp.call(c16.StopTransaction(meter_stop=1, timestamp=TS, transaction_id=999), suppress=False)
    env.events.fail["heartbeat"] = ZeroDivisionError("bug")
    with pytest.raises(InternalError):
        await cp.call(c16.Heartbeat(), suppress=False)
    env.events.fail.clear()
    assert await cp.call(c16.Heartbeat(), suppress=False)
    await asyncio.sleep(0)
