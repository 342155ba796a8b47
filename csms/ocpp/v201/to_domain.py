"""OCPP 2.0.1 payloads (snake_case keyword arguments from the `ocpp` library) -> domain values. Pure.

2.0.1's addressing (EVSE + connector) and connector states are the domain's own, so most maps are 1:1.
Meter values carry unitOfMeasure {unit, multiplier}: value x 10^multiplier, converted to SI.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ocpp.v201.enums import ChargingStateEnumType, ConnectorStatusEnumType, TransactionEventEnumType

from csms.domain.enums import ChargingState, ConnectorStatus, RateUnit, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import ChargingNeeds, MeterSample, SampledValue, StationInfo, TxEvent
from csms.ocpp.common import BadPayload, measurand, parse_ts, to_si

#: Exhaustive (a test asserts every enum member is a key).
STATUS: dict[ConnectorStatusEnumType, ConnectorStatus] = {
    ConnectorStatusEnumType.available: ConnectorStatus.AVAILABLE,
    ConnectorStatusEnumType.occupied: ConnectorStatus.OCCUPIED,
    ConnectorStatusEnumType.reserved: ConnectorStatus.RESERVED,
    ConnectorStatusEnumType.unavailable: ConnectorStatus.UNAVAILABLE,
    ConnectorStatusEnumType.faulted: ConnectorStatus.FAULTED,
}

CHARGING_STATE: dict[ChargingStateEnumType, ChargingState] = {
    ChargingStateEnumType.charging: ChargingState.CHARGING,
    ChargingStateEnumType.ev_connected: ChargingState.EV_CONNECTED,
    ChargingStateEnumType.suspended_ev: ChargingState.SUSPENDED_EV,
    ChargingStateEnumType.suspended_evse: ChargingState.SUSPENDED_EVSE,
    ChargingStateEnumType.idle: ChargingState.IDLE,
}

EVENT_KIND: dict[TransactionEventEnumType, TxEventKind] = {
    TransactionEventEnumType.started: TxEventKind.STARTED,
    TransactionEventEnumType.updated: TxEventKind.UPDATED,
    TransactionEventEnumType.ended: TxEventKind.ENDED,
}


def _ts(value: str) -> datetime:
    at = parse_ts(value)
    if at is None:
        raise BadPayload("timestamp missing", "occurrence")
    return at


def evse(evse_id: int | None, connector_id: int | None = None) -> EvseRef | None:
    """EVSE 0 (or none) is the whole station."""
    if not evse_id:
        return None
    return EvseRef(evse_id, connector_id or 1)


def evse_of(evse_type: dict[str, Any] | None) -> EvseRef | None:
    return evse(evse_type["id"], evse_type.get("connector_id")) if evse_type else None


def connector_status(status: str) -> ConnectorStatus:
    return STATUS[ConnectorStatusEnumType(status)]


def charging_state(state: str | None) -> ChargingState | None:
    return CHARGING_STATE[ChargingStateEnumType(state)] if state else None


def station_info(charging_station: dict[str, Any]) -> StationInfo:
    return StationInfo(
        vendor=charging_station["vendor_name"],
        model=charging_station["model"],
        serial_number=charging_station.get("serial_number"),
        firmware_version=charging_station.get("firmware_version"),
    )


def sampled_value(sv: dict[str, Any]) -> SampledValue | None:
    """One sampledValue in SI units; None for measurands we do not keep or units that do not fit."""
    m = measurand(sv.get("measurand"))
    if m is None:
        return None
    raw = float(sv["value"])
    if not math.isfinite(raw):
        return None
    uom = sv.get("unit_of_measure") or {}
    value = to_si(m, raw, uom.get("unit"), int(uom.get("multiplier", 0)))
    if value is None:
        return None
    return SampledValue(m, value, sv.get("phase"), sv.get("context"), sv.get("location"))


def meter_samples(meter_value: list[dict[str, Any]] | None) -> tuple[MeterSample, ...]:
    out = []
    for mv in meter_value or ():
        values = tuple(v for v in (sampled_value(sv) for sv in mv["sampled_value"]) if v is not None)
        out.append(MeterSample(_ts(mv["timestamp"]), values))
    return tuple(out)


def transaction_event(station_id: str, kw: dict[str, Any]) -> TxEvent:
    info = kw["transaction_info"]
    kind = EVENT_KIND[TransactionEventEnumType(kw["event_type"])]
    stopped = info.get("stopped_reason")
    if kind is TxEventKind.ENDED and stopped is None:
        stopped = "Local"  # 2.0.1: an absent stoppedReason means Local
    token = kw.get("id_token")
    return TxEvent(
        kind=kind,
        station_id=StationId(station_id),
        at=_ts(kw["timestamp"]),
        charger_tx_id=info["transaction_id"],
        evse=evse_of(kw.get("evse")),
        id_token=token["id_token"] if token else None,
        seq_no=kw["seq_no"],
        trigger=kw["trigger_reason"],
        charging_state=charging_state(info.get("charging_state")),
        stop_reason=stopped,
        samples=meter_samples(kw.get("meter_value")),
        offline=bool(kw.get("offline", False)),
        reservation_id=kw.get("reservation_id"),
        remote_start_id=info.get("remote_start_id"),
        phases_used=kw.get("number_of_phases_used"),
    )


#: requestedEnergyTransfer -> phases the car draws on (DC modes: None, the car's phases do not load the grid
#: phases of an AC EVSE the same way).
AC_PHASES = {"AC_single_phase": 1, "AC_two_phase": 2, "AC_three_phase": 3}


def charging_needs(station_id: str, kw: dict[str, Any], received_at: datetime) -> ChargingNeeds:
    """NotifyEVChargingNeeds: AC gives energy and min/max current per phase; DC gives max current and
    max power. Units are already SI (Wh, A, W)."""
    needs = kw["charging_needs"]
    ac = needs.get("ac_charging_parameters") or {}
    dc = needs.get("dc_charging_parameters") or {}
    energy = ac.get("energy_amount", dc.get("energy_amount"))
    return ChargingNeeds(
        station_id=StationId(station_id),
        evse=EvseRef(kw["evse_id"], 1),
        received_at=received_at,
        energy_amount_wh=float(energy) if energy is not None else None,
        departure_time=parse_ts(needs.get("departure_time")),
        ev_max_current_a=_float(ac.get("ev_max_current", dc.get("ev_max_current"))),
        ev_min_current_a=_float(ac.get("ev_min_current")),
        ev_max_power_w=_float(dc.get("ev_max_power")),
        source="ev",
        ev_phases=AC_PHASES.get(needs.get("requested_energy_transfer", "")),
    )


def charging_limit(kw: dict[str, Any]) -> tuple[EvseRef | None, str, float | None, RateUnit | None]:
    """NotifyChargingLimit: the limit is the first period of the first schedule (None without one)."""
    source = kw["charging_limit"]["charging_limit_source"]
    schedules = kw.get("charging_schedule") or []
    limit: float | None = None
    unit: RateUnit | None = None
    if schedules and schedules[0].get("charging_schedule_period"):
        limit = float(schedules[0]["charging_schedule_period"][0]["limit"])
        unit = RateUnit(schedules[0]["charging_rate_unit"])
    return evse(kw.get("evse_id")), source, limit, unit


def _float(v: Any) -> float | None:
    return None if v is None else float(v)
