"""OCPP 2.0.1 <-> domain, table-driven. Every request payload we build is validated against the schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v201.enums import ChargingStateEnumType, ConnectorStatusEnumType, TransactionEventEnumType

from csms.domain.enums import (
    AuthorizationStatus, ChargingState, ConnectorStatus, Measurand, ProfilePurpose, RateUnit, TxEventKind,
)
from csms.domain.ids import EvseRef, TransactionKey
from csms.domain.model import AuthorizationResult, ChargingProfile, SchedulePeriod, TxReply
from csms.ocpp.v201 import from_domain as fd
from csms.ocpp.v201 import to_domain as td

from .schema import assert_valid

T0 = datetime(2026, 11, 27, 5, 15, 13, 123456, tzinfo=UTC)


def body(result: object) -> dict:
    return snake_to_camel_case(remove_nones(serialize_as_dict(result)))


def test_every_enum_member_is_mapped() -> None:
    assert set(ConnectorStatusEnumType) == set(td.STATUS)
    assert set(ChargingStateEnumType) == set(td.CHARGING_STATE)
    assert set(TransactionEventEnumType) == set(td.EVENT_KIND)
    assert set(AuthorizationStatus) == set(fd.AUTH_STATUS)


@pytest.mark.parametrize("raw, status", [(s.value, ConnectorStatus(s.value)) for s in ConnectorStatusEnumType])
def test_connector_status_is_one_to_one(raw: str, status: ConnectorStatus) -> None:
    assert td.connector_status(raw) is status


@pytest.mark.parametrize("raw, state", [(s.value, ChargingState(s.value)) for s in ChargingStateEnumType])
def test_charging_state_is_one_to_one(raw: str, state: ChargingState) -> None:
    assert td.charging_state(raw) is state


@pytest.mark.parametrize("sv, measurand, value", [
    ({"value": 1234}, Measurand.ENERGY_IMPORT_WH, 1234.0),
    ({"value": 1.5, "unit_of_measure": {"unit": "kWh"}}, Measurand.ENERGY_IMPORT_WH, 1500.0),
    ({"value": 1.5, "unit_of_measure": {"unit": "Wh", "multiplier": 3}}, Measurand.ENERGY_IMPORT_WH, 1500.0),
    ({"value": 7.4, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "kW"}},
     Measurand.POWER_IMPORT_W, 7400.0),
    ({"value": 74, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W", "multiplier": 2}},
     Measurand.POWER_IMPORT_W, 7400.0),
    ({"value": 160, "measurand": "Current.Import", "unit_of_measure": {"unit": "A", "multiplier": -1}},
     Measurand.CURRENT_IMPORT_A, 16.0),
    ({"value": 230, "measurand": "Voltage", "unit_of_measure": {"unit": "V"}}, Measurand.VOLTAGE_V, 230.0),
    ({"value": 55, "measurand": "SoC"}, Measurand.SOC_PCT, 55.0),
    ({"value": 55, "measurand": "SoC", "unit_of_measure": {"unit": "Percent"}}, Measurand.SOC_PCT, 55.0),
])
def test_sampled_value_units_and_multipliers(sv: dict, measurand: Measurand, value: float) -> None:
    got = td.sampled_value(sv)
    assert got is not None and got.measurand is measurand and got.value == pytest.approx(value)


def test_sampled_values_we_do_not_keep() -> None:
    assert td.sampled_value({"value": 20, "measurand": "Temperature"}) is None
    assert td.sampled_value({"value": 20, "measurand": "Current.Import", "unit_of_measure": {"unit": "kWh"}}) is None


TX_REQUEST = {
    "eventType": "Ended", "timestamp": "2026-11-27T06:00:00.000Z", "triggerReason": "EVCommunicationLost",
    "seqNo": 7, "offline": True, "reservationId": 3,
    "transactionInfo": {"transactionId": "TX-1", "chargingState": "EVConnected", "stoppedReason": "EVDisconnected",
                        "remoteStartId": 11},
    "evse": {"id": 2, "connectorId": 1},
    "idToken": {"idToken": "TAG", "type": "ISO14443"},
    "meterValue": [{"timestamp": "2026-11-27T06:00:00Z", "sampledValue": [
        {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}, "context": "Transaction.End", "location": "Outlet"},
        {"value": 10, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}}]}],
}


def test_transaction_event() -> None:
    assert_valid("2.0.1", "TransactionEvent", TX_REQUEST)
    ev = td.transaction_event("CP", camel_to_snake_case(TX_REQUEST))
    assert ev.kind is TxEventKind.ENDED and ev.charger_tx_id == "TX-1" and ev.seq_no == 7
    assert ev.trigger == "EVCommunicationLost" and ev.charging_state is ChargingState.EV_CONNECTED
    assert ev.stop_reason == "EVDisconnected" and ev.offline is True and ev.reservation_id == 3
    assert ev.remote_start_id == 11 and ev.evse == EvseRef(2, 1) and ev.id_token == "TAG"
    assert ev.at == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    s = ev.samples[0]
    assert s.get(Measurand.ENERGY_IMPORT_WH) == 12500.0 and s.values[0].context == "Transaction.End"
    assert s.values[1].phase == "L1" and s.values[0].location == "Outlet"


def test_transaction_event_minimal_ended_is_local() -> None:
    kw = camel_to_snake_case({"eventType": "Ended", "timestamp": "2026-11-27T06:00:00Z", "triggerReason": "StopAuthorized",
                              "seqNo": 1, "transactionInfo": {"transactionId": "T"}})
    ev = td.transaction_event("CP", kw)
    assert ev.stop_reason == "Local" and ev.evse is None and ev.id_token is None and not ev.offline


@pytest.mark.parametrize("needs, expected", [
    ({"requestedEnergyTransfer": "AC_three_phase", "departureTime": "2026-11-27T16:00:00Z",
      "acChargingParameters": {"energyAmount": 20000, "evMinCurrent": 6, "evMaxCurrent": 16, "evMaxVoltage": 400}},
     (20000.0, datetime(2026, 11, 27, 16, tzinfo=UTC), 16.0, 6.0, None)),
    ({"requestedEnergyTransfer": "DC",
      "dcChargingParameters": {"evMaxCurrent": 200, "evMaxVoltage": 800, "energyAmount": 50000, "evMaxPower": 150000}},
     (50000.0, None, 200.0, None, 150000.0)),
])
def test_charging_needs(needs: dict, expected: tuple) -> None:
    payload = {"evseId": 1, "chargingNeeds": needs}
    assert_valid("2.0.1", "NotifyEVChargingNeeds", payload)
    n = td.charging_needs("CP", camel_to_snake_case(payload), T0)
    assert (n.energy_amount_wh, n.departure_time, n.ev_max_current_a, n.ev_min_current_a, n.ev_max_power_w) == expected
    assert n.evse == EvseRef(1, 1) and n.received_at == T0 and n.source == "ev"


@pytest.mark.parametrize("transfer, phases", [("AC_single_phase", 1), ("AC_two_phase", 2), ("AC_three_phase", 3),
                                               ("DC", None)])
def test_charging_needs_tell_the_phases_an_ac_car_draws_on(transfer: str, phases: int | None) -> None:
    payload = {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": transfer}}
    assert_valid("2.0.1", "NotifyEVChargingNeeds", payload)
    assert td.charging_needs("CP", camel_to_snake_case(payload), T0).ev_phases == phases


def test_transaction_event_number_of_phases_used() -> None:
    kw = camel_to_snake_case({"eventType": "Started", "timestamp": "2026-11-27T06:00:00Z", "triggerReason": "Authorized",
                              "seqNo": 0, "transactionInfo": {"transactionId": "T"}, "numberOfPhasesUsed": 1})
    assert td.transaction_event("CP", kw).phases_used == 1


def test_charging_limit() -> None:
    payload = {"evseId": 1, "chargingLimit": {"chargingLimitSource": "EMS"}, "chargingSchedule": [
        {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7000}]}]}
    assert td.charging_limit(camel_to_snake_case(payload)) == (EvseRef(1, 1), "EMS", 7000.0, RateUnit.WATTS)
    assert td.charging_limit(camel_to_snake_case({"chargingLimit": {"chargingLimitSource": "SO"}})) == (
        None, "SO", None, None)


@pytest.mark.parametrize("auth, had_token, expected", [
    (AuthorizationResult(AuthorizationStatus.ACCEPTED), True, {"idTokenInfo": {"status": "Accepted"}}),
    (AuthorizationResult(AuthorizationStatus.ACCEPTED), False, {}),
    (None, True, {"idTokenInfo": {"status": "Unknown"}}),
    (AuthorizationResult(AuthorizationStatus.BLOCKED, T0, "G1"), True, {"idTokenInfo": {
        "status": "Blocked", "cacheExpiryDateTime": "2026-11-27T05:15:13.123Z",
        "groupIdToken": {"idToken": "G1", "type": "Central"}}}),
])
def test_transaction_event_answer(auth: AuthorizationResult | None, had_token: bool, expected: dict) -> None:
    got = body(fd.transaction_event_result(TxReply(TransactionKey("CP/T"), "T", auth), had_token))
    assert got == expected
    assert_valid("2.0.1", "TransactionEvent", got, answer=True)


def test_transaction_event_answer_total_cost() -> None:
    got = body(fd.transaction_event_result(TxReply(None, "T", None, 3.14159), False))
    assert got == {"totalCost": 3.14}


PROFILE = ChargingProfile(
    profile_id=5, purpose=ProfilePurpose.TX_DEFAULT, stack_level=1, unit=RateUnit.WATTS,
    periods=(SchedulePeriod(0, 11000.04), SchedulePeriod(900, 7400, 3)), start=T0, duration_s=3600,
)


def test_charging_profile_has_a_schedule_list() -> None:
    p = fd.set_charging_profile(1, PROFILE)
    prof = p["chargingProfile"]
    assert isinstance(prof["chargingSchedule"], list) and prof["chargingSchedule"][0]["id"] == 5
    assert prof["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 11000.0
    assert prof["chargingProfileKind"] == "Absolute" and p["evseId"] == 1
    assert_valid("2.0.1", "SetChargingProfile", p)
    p = fd.set_charging_profile(3, replace(PROFILE, purpose=ProfilePurpose.STATION_MAX, start=None))
    assert p["evseId"] == 0 and p["chargingProfile"]["chargingProfileKind"] == "Relative"
    assert_valid("2.0.1", "SetChargingProfile", p)
    p = fd.set_charging_profile(1, replace(PROFILE, purpose=ProfilePurpose.TX, charger_tx_id="TX-1"))
    assert p["chargingProfile"]["transactionId"] == "TX-1"
    assert_valid("2.0.1", "SetChargingProfile", p)


@pytest.mark.parametrize("action, payload", [
    ("RequestStartTransaction", fd.remote_start(1, "TAG", 7)),
    ("RequestStartTransaction", fd.remote_start(None, "TAG", 7)),
    ("RequestStartTransaction", fd.remote_start(None, "TAG", 7, "Central")),
    ("RequestStopTransaction", fd.remote_stop("TX-1")),
    ("ClearChargingProfile", fd.clear_charging_profile(5, None, None)),
    ("ClearChargingProfile", fd.clear_charging_profile(None, 1, "ChargePointMaxProfile")),
    ("GetCompositeSchedule", fd.get_composite_schedule(1, 3600, "A")),
    ("ChangeAvailability", fd.change_availability(None, False)),
    ("ChangeAvailability", fd.change_availability(2, True)),
    ("Reset", fd.reset(False)),
    ("UnlockConnector", fd.unlock_connector(EvseRef(2, 1))),
    ("ReserveNow", fd.reserve_now(3, None, "TAG", T0)),
    ("ReserveNow", fd.reserve_now(3, 1, "TAG", T0)),
    ("ReserveNow", fd.reserve_now(3, 1, "TAG", T0, "eMAID")),
    ("CancelReservation", fd.cancel_reservation(3)),
    ("TriggerMessage", fd.trigger_message("DiagnosticsStatusNotification", 1)),
    ("GetVariables", fd.get_variables(["HeartbeatInterval", "Foo.Bar", "nonsense"])),
    ("SetVariables", fd.set_variables("MeterValueSampleInterval", "60")),
])
def test_request_payloads_are_schema_valid(action: str, payload: dict) -> None:
    assert_valid("2.0.1", action, payload)


def test_specific_request_words() -> None:
    assert fd.reset(False) == {"type": "OnIdle"} and fd.reset(True) == {"type": "Immediate"}
    assert fd.reserve_now(3, None, "TAG", T0)["idToken"] == {"idToken": "TAG", "type": "ISO14443"}
    assert fd.reserve_now(3, None, "TAG", T0, "Central")["idToken"] == {"idToken": "TAG", "type": "Central"}
    assert fd.remote_start(None, "TAG", 7, "KeyCode")["idToken"] == {"idToken": "TAG", "type": "KeyCode"}
    assert fd.change_availability(None, True) == {"operationalStatus": "Operative"}
    assert fd.trigger_message("DiagnosticsStatusNotification", None) == {"requestedMessage": "LogStatusNotification"}
    assert fd.clear_charging_profile(None, 1, "ChargePointMaxProfile") == {
        "chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "ChargingStationMaxProfile"}}


@pytest.mark.parametrize("key, cv", [
    ("HeartbeatInterval", ("OCPPCommCtrlr", "HeartbeatInterval")),
    ("MeterValueSampleInterval", ("SampledDataCtrlr", "TxUpdatedInterval")),
    ("SmartChargingCtrlr.RateUnit", ("SmartChargingCtrlr", "RateUnit")),
    ("nonsense", None),
    (".x", None),
])
def test_variable_keys(key: str, cv: tuple | None) -> None:
    assert fd.variable(key) == cv


def test_variables_answer_is_keyed_by_the_callers_names() -> None:
    answer = {"getVariableResult": [
        {"attributeStatus": "Accepted", "attributeValue": "300", "component": {"name": "OCPPCommCtrlr"},
         "variable": {"name": "HeartbeatInterval"}},
        {"attributeStatus": "UnknownVariable", "component": {"name": "Foo"}, "variable": {"name": "Bar"}}]}
    got = fd.variables(["HeartbeatInterval", "Foo.Bar", "nonsense"], answer)
    assert got == {"values": {"HeartbeatInterval": "300"}, "readonly": [], "unknown": ["Foo.Bar", "nonsense"]}


@pytest.mark.parametrize("values, units, smart", [
    ({}, {RateUnit.AMPS}, True),
    ({"SmartChargingCtrlr.RateUnit": "A,W"}, {RateUnit.AMPS, RateUnit.WATTS}, True),
    ({"SmartChargingCtrlr.RateUnit": "W", "SmartChargingCtrlr.Enabled": "false"}, {RateUnit.WATTS}, False),
])
def test_capabilities(values: dict, units: set, smart: bool) -> None:
    caps = fd.capabilities(values)
    assert caps.rate_units == frozenset(units) and caps.smart_charging is smart
