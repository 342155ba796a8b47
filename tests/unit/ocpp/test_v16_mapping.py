"""OCPP 1.6 <-> domain, table-driven. Every request payload we build is validated against the schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v16.enums import ChargePointStatus

from csms.domain.enums import (
    AuthorizationStatus, ChargingState, ConnectorStatus, Measurand, ProfilePurpose, RateUnit, RegistrationStatus,
    TxEventKind,
)
from csms.domain.ids import EvseRef
from csms.domain.model import AuthorizationResult, ChargingProfile, SchedulePeriod
from csms.domain.ports import BootReply
from csms.ocpp.v16 import from_domain as fd
from csms.ocpp.v16 import to_domain as td

from .schema import assert_valid

T0 = datetime(2026, 11, 27, 5, 15, 13, 123456, tzinfo=UTC)


def test_every_status_is_mapped() -> None:
    assert set(ChargePointStatus) == set(td.STATUS)


@pytest.mark.parametrize("raw, status, state", [
    ("Available", ConnectorStatus.AVAILABLE, None),
    ("Preparing", ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED),
    ("Charging", ConnectorStatus.OCCUPIED, ChargingState.CHARGING),
    ("SuspendedEV", ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EV),
    ("SuspendedEVSE", ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EVSE),
    ("Finishing", ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED),
    ("Reserved", ConnectorStatus.RESERVED, None),
    ("Unavailable", ConnectorStatus.UNAVAILABLE, None),
    ("Faulted", ConnectorStatus.FAULTED, None),
])
def test_status(raw: str, status: ConnectorStatus, state: ChargingState | None) -> None:
    assert td.connector_status(raw) == (status, state)


@pytest.mark.parametrize("connector, ref", [(0, None), (1, EvseRef(1, 1)), (3, EvseRef(3, 1))])
def test_evse_ref(connector: int, ref: EvseRef | None) -> None:
    assert td.evse_ref(connector) == ref


def test_error_code() -> None:
    assert td.error_code("NoError") is None
    assert td.error_code("GroundFailure") == "GroundFailure"


@pytest.mark.parametrize("sv, measurand, value", [
    ({"value": "1234"}, Measurand.ENERGY_IMPORT_WH, 1234.0),
    ({"value": "1.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"}, Measurand.ENERGY_IMPORT_WH, 1500.0),
    ({"value": "7.4", "unit": "kW", "measurand": "Power.Active.Import"}, Measurand.POWER_IMPORT_W, 7400.0),
    ({"value": "3680", "unit": "W", "measurand": "Power.Active.Import"}, Measurand.POWER_IMPORT_W, 3680.0),
    ({"value": "16.0", "unit": "A", "measurand": "Current.Import"}, Measurand.CURRENT_IMPORT_A, 16.0),
    ({"value": "32", "measurand": "Current.Offered"}, Measurand.CURRENT_OFFERED_A, 32.0),
    ({"value": "230", "unit": "V", "measurand": "Voltage"}, Measurand.VOLTAGE_V, 230.0),
    ({"value": "80", "unit": "Percent", "measurand": "SoC"}, Measurand.SOC_PCT, 80.0),
    ({"value": "11", "unit": "kW", "measurand": "Power.Offered"}, Measurand.POWER_OFFERED_W, 11000.0),
])
def test_sampled_value_units(sv: dict, measurand: Measurand, value: float) -> None:
    got = td.sampled_value(sv)
    assert got is not None and got.measurand is measurand and got.value == value


@pytest.mark.parametrize("sv", [
    {"value": "21", "measurand": "Temperature", "unit": "Celsius"},
    {"value": "abc"},
    {"value": "nan"},
    {"value": "1", "format": "SignedData"},
    {"value": "5", "unit": "A", "measurand": "Energy.Active.Import.Register"},
])
def test_sampled_values_we_do_not_keep(sv: dict) -> None:
    assert td.sampled_value(sv) is None


def test_sampled_value_keeps_phase_context_location() -> None:
    sv = td.sampled_value({"value": "10", "unit": "A", "measurand": "Current.Import", "phase": "L2",
                           "context": "Sample.Periodic", "location": "Outlet"})
    assert sv is not None and (sv.phase, sv.context, sv.location) == ("L2", "Sample.Periodic", "Outlet")


def test_start_transaction() -> None:
    ev = td.start_transaction("CP", {"connector_id": 2, "id_tag": "TAG", "meter_start": 1000,
                                     "timestamp": "2026-11-27T05:15:13Z", "reservation_id": 7})
    assert ev.kind is TxEventKind.STARTED and ev.charger_tx_id is None and ev.seq_no == 0
    assert ev.evse == EvseRef(2, 1) and ev.id_token == "TAG" and ev.meter_start_wh == 1000.0
    assert ev.reservation_id == 7 and ev.at == datetime(2026, 11, 27, 5, 15, 13, tzinfo=UTC)


def test_stop_transaction_with_transaction_data() -> None:
    ev = td.stop_transaction("CP", {
        "transaction_id": 42, "meter_stop": 5000, "timestamp": "2026-11-27T06:00:00Z", "reason": "EVDisconnected",
        "id_tag": "TAG", "transaction_data": [
            {"timestamp": "2026-11-27T05:30:00Z", "sampled_value": [{"value": "3", "unit": "kWh"}]}],
    })
    assert ev.kind is TxEventKind.ENDED and ev.charger_tx_id == "42" and ev.meter_stop_wh == 5000.0
    assert ev.stop_reason == "EVDisconnected" and ev.id_token == "TAG"
    assert ev.samples[0].get(Measurand.ENERGY_IMPORT_WH) == 3000.0


def test_stop_without_reason_is_local() -> None:
    ev = td.stop_transaction("CP", {"transaction_id": 1, "meter_stop": 1, "timestamp": "2026-11-27T06:00:00Z"})
    assert ev.stop_reason == "Local" and ev.samples == ()


def test_meter_values_with_transaction() -> None:
    samples = td.meter_samples([{"timestamp": "2026-11-27T05:30:00Z", "sampled_value": [{"value": "1"}]}])
    ev = td.meter_values_tx("CP", {"connector_id": 1, "transaction_id": 9}, samples, T0)
    assert ev.kind is TxEventKind.UPDATED and ev.charger_tx_id == "9" and ev.at == samples[0].at


def test_every_auth_status_is_mapped_and_unknown_is_invalid() -> None:
    assert set(AuthorizationStatus) == set(fd.AUTH_STATUS)
    assert fd.AUTH_STATUS[AuthorizationStatus.UNKNOWN] == "Invalid"


@pytest.mark.parametrize("auth, expected", [
    (None, {"status": "Invalid"}),
    (AuthorizationResult(AuthorizationStatus.ACCEPTED), {"status": "Accepted"}),
    (AuthorizationResult(AuthorizationStatus.UNKNOWN), {"status": "Invalid"}),
    (AuthorizationResult(AuthorizationStatus.ACCEPTED, T0, "FLEET"),
     {"status": "Accepted", "expiryDate": "2026-11-27T05:15:13.123Z", "parentIdTag": "FLEET"}),
])
def test_id_tag_info(auth: AuthorizationResult | None, expected: dict) -> None:
    got = snake_to_camel_case(remove_nones(serialize_as_dict(fd.id_tag_info(auth))))
    assert got == expected
    assert_valid("1.6", "Authorize", {"idTagInfo": got}, answer=True)


@pytest.mark.parametrize("status", list(RegistrationStatus))
def test_boot_result(status: RegistrationStatus) -> None:
    body = snake_to_camel_case(remove_nones(serialize_as_dict(fd.boot_result(BootReply(status, 60), T0))))
    assert body == {"currentTime": "2026-11-27T05:15:13.123Z", "interval": 60, "status": status.value}
    assert_valid("1.6", "BootNotification", body, answer=True)


PROFILE = ChargingProfile(
    profile_id=5, purpose=ProfilePurpose.TX_DEFAULT, stack_level=1, unit=RateUnit.AMPS,
    periods=(SchedulePeriod(0, 16.04), SchedulePeriod(900, 10.26, 3)), start=T0, duration_s=3600,
)


def test_charging_profile_rounds_limits_to_one_decimal_and_validates() -> None:
    p = fd.set_charging_profile(1, PROFILE)
    sched = p["csChargingProfiles"]["chargingSchedule"]
    assert [x["limit"] for x in sched["chargingSchedulePeriod"]] == [16.0, 10.3]
    assert sched["chargingSchedulePeriod"][1]["numberPhases"] == 3
    assert p["csChargingProfiles"]["chargingProfileKind"] == "Absolute"
    assert sched["startSchedule"] == "2026-11-27T05:15:13.123Z" and sched["duration"] == 3600
    assert_valid("1.6", "SetChargingProfile", p)


def test_station_max_profile_goes_to_connector_0_and_tx_profile_carries_int_id() -> None:
    from dataclasses import replace
    p = fd.set_charging_profile(2, replace(PROFILE, purpose=ProfilePurpose.STATION_MAX, start=None))
    assert p["connectorId"] == 0 and p["csChargingProfiles"]["chargingProfilePurpose"] == "ChargePointMaxProfile"
    assert p["csChargingProfiles"]["chargingProfileKind"] == "Relative"
    assert_valid("1.6", "SetChargingProfile", p)
    p = fd.set_charging_profile(2, replace(PROFILE, purpose=ProfilePurpose.TX, charger_tx_id="77"))
    assert p["csChargingProfiles"]["transactionId"] == 77
    assert_valid("1.6", "SetChargingProfile", p)


@pytest.mark.parametrize("action, payload", [
    ("RemoteStartTransaction", fd.remote_start(1, "TAG")),
    ("RemoteStartTransaction", fd.remote_start(None, "TAG")),
    ("RemoteStopTransaction", fd.remote_stop("42")),
    ("ClearChargingProfile", fd.clear_charging_profile(5, 1, "TxDefaultProfile")),
    ("ClearChargingProfile", fd.clear_charging_profile(None, None, "ChargingStationMaxProfile")),
    ("ClearChargingProfile", fd.clear_charging_profile(None, None, None)),
    ("GetCompositeSchedule", fd.get_composite_schedule(1, 3600, "W")),
    ("ChangeAvailability", fd.change_availability(None, False)),
    ("ChangeAvailability", fd.change_availability(2, True)),
    ("Reset", fd.reset(True)),
    ("UnlockConnector", fd.unlock_connector(EvseRef(2, 1))),
    ("ReserveNow", fd.reserve_now(3, None, "TAG", T0)),
    ("CancelReservation", fd.cancel_reservation(3)),
    ("TriggerMessage", fd.trigger_message("StatusNotification", 1)),
    ("TriggerMessage", fd.trigger_message("LogStatusNotification", None)),
    ("GetConfiguration", fd.get_configuration(None)),
    ("GetConfiguration", fd.get_configuration(fd.CAPABILITY_KEYS)),
    ("ChangeConfiguration", fd.change_configuration("HeartbeatInterval", "60")),
])
def test_request_payloads_are_schema_valid(action: str, payload: dict) -> None:
    assert_valid("1.6", action, payload)


def test_specific_request_words() -> None:
    assert fd.reserve_now(3, None, "TAG", T0)["connectorId"] == 0
    assert fd.change_availability(None, False) == {"connectorId": 0, "type": "Inoperative"}
    assert fd.reset(False) == {"type": "Soft"} and fd.reset(True) == {"type": "Hard"}
    assert fd.clear_charging_profile(None, None, "ChargingStationMaxProfile") == {
        "chargingProfilePurpose": "ChargePointMaxProfile"}
    with pytest.raises(ValueError):
        fd.remote_stop("not-an-int")


@pytest.mark.parametrize("values, units, smart", [
    ({}, {RateUnit.AMPS}, True),
    ({"ChargingScheduleAllowedChargingRateUnit": "Current"}, {RateUnit.AMPS}, True),
    ({"ChargingScheduleAllowedChargingRateUnit": "Current,Power"}, {RateUnit.AMPS, RateUnit.WATTS}, True),
    ({"ChargingScheduleAllowedChargingRateUnit": "W"}, {RateUnit.WATTS}, True),
    ({"SupportedFeatureProfiles": "Core,FirmwareManagement"}, {RateUnit.AMPS}, False),
    ({"SupportedFeatureProfiles": "Core, SmartCharging"}, {RateUnit.AMPS}, True),
])
def test_capabilities(values: dict, units: set, smart: bool) -> None:
    caps = fd.capabilities(values)
    assert caps.rate_units == frozenset(units) and caps.smart_charging is smart


def test_configuration_and_composite_answers() -> None:
    cfg = fd.configuration({"configurationKey": [{"key": "A", "value": "1", "readonly": True}], "unknownKey": ["B"]})
    assert cfg == {"values": {"A": "1"}, "readonly": ["A"], "unknown": ["B"]}
    comp = fd.composite_schedule({"status": "Accepted", "connectorId": 1, "scheduleStart": "2026-11-27T05:00:00Z",
                                  "chargingSchedule": {"chargingRateUnit": "A", "duration": 60,
                                                       "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}]}})
    assert comp["unit"] == "A" and comp["periods"] == [{"start_offset_s": 0, "limit": 6.0, "number_phases": None}]
