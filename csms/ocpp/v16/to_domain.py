"""OCPP 1.6 payloads (snake_case keyword arguments from the `ocpp` library) -> domain values. Pure.

1.6 addresses a connector with one integer: connectorId 0 is the whole station, n > 0 is EVSE n with
its single connector 1. 1.6's nine status words are finer than 2.0.1's five connector states: the
extra information becomes a ChargingState.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ocpp.v16.enums import ChargePointStatus

from csms.domain.enums import ChargingState, ConnectorStatus, TxEventKind
from csms.domain.ids import EvseRef, StationId
from csms.domain.model import MeterSample, SampledValue, StationInfo, TxEvent
from csms.ocpp.common import BadPayload, measurand, parse_ts, to_si

#: Every 1.6 status -> (connector status, what the EV is doing). A test asserts it is exhaustive.
STATUS: dict[ChargePointStatus, tuple[ConnectorStatus, ChargingState | None]] = {
    ChargePointStatus.available: (ConnectorStatus.AVAILABLE, None),
    ChargePointStatus.preparing: (ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED),
    ChargePointStatus.charging: (ConnectorStatus.OCCUPIED, ChargingState.CHARGING),
    ChargePointStatus.suspended_ev: (ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EV),
    ChargePointStatus.suspended_evse: (ConnectorStatus.OCCUPIED, ChargingState.SUSPENDED_EVSE),
    ChargePointStatus.finishing: (ConnectorStatus.OCCUPIED, ChargingState.EV_CONNECTED),
    ChargePointStatus.reserved: (ConnectorStatus.RESERVED, None),
    ChargePointStatus.unavailable: (ConnectorStatus.UNAVAILABLE, None),
    ChargePointStatus.faulted: (ConnectorStatus.FAULTED, None),
}


def evse_ref(connector_id: int) -> EvseRef | None:
    """1.6 connectorId 0 means the whole station; n > 0 maps to EVSE n, connector 1."""
    return None if connector_id == 0 else EvseRef(evse_id=connector_id, connector_id=1)


def connector_status(status: str) -> tuple[ConnectorStatus, ChargingState | None]:
    return STATUS[ChargePointStatus(status)]


def error_code(code: str | None) -> str | None:
    """1.6 always sends an errorCode; NoError is not an error."""
    return None if code in (None, "NoError") else code


def station_info(kw: dict[str, Any]) -> StationInfo:
    return StationInfo(
        vendor=kw["charge_point_vendor"],
        model=kw["charge_point_model"],
        serial_number=kw.get("charge_point_serial_number") or kw.get("charge_box_serial_number"),
        firmware_version=kw.get("firmware_version"),
    )


def sampled_value(sv: dict[str, Any]) -> SampledValue | None:
    """One 1.6 sampledValue in SI units; None for values we do not keep (other measurands, signed
    data, non-numeric values, units that do not fit the measurand)."""
    m = measurand(sv.get("measurand"))
    if m is None or sv.get("format") == "SignedData":
        return None
    try:
        raw = float(sv["value"])
    except (TypeError, ValueError):
        return None
    if not math.isfinite(raw):
        return None
    value = to_si(m, raw, sv.get("unit"))
    if value is None:
        return None
    return SampledValue(m, value, sv.get("phase"), sv.get("context"), sv.get("location"))


def meter_samples(meter_value: list[dict[str, Any]] | None) -> tuple[MeterSample, ...]:
    out = []
    for mv in meter_value or ():
        at = _required_ts(mv["timestamp"])
        values = tuple(v for v in (sampled_value(sv) for sv in mv.get("sampled_value", ())) if v is not None)
        out.append(MeterSample(at, values))
    return tuple(out)


def start_transaction(station_id: str, kw: dict[str, Any]) -> TxEvent:
    """StartTransaction: the CSMS assigns the id (charger_tx_id None); seq_no 0 marks the start."""
    return TxEvent(
        kind=TxEventKind.STARTED,
        station_id=StationId(station_id),
        at=_required_ts(kw["timestamp"]),
        charger_tx_id=None,
        evse=evse_ref(kw["connector_id"]),
        id_token=kw["id_tag"],
        seq_no=0,
        meter_start_wh=float(kw["meter_start"]),
        reservation_id=kw.get("reservation_id"),
    )


def stop_transaction(station_id: str, kw: dict[str, Any]) -> TxEvent:
    """StopTransaction; `transactionData` carries the meter values of the whole session."""
    return TxEvent(
        kind=TxEventKind.ENDED,
        station_id=StationId(station_id),
        at=_required_ts(kw["timestamp"]),
        charger_tx_id=str(kw["transaction_id"]),
        id_token=kw.get("id_tag"),
        stop_reason=kw.get("reason") or "Local",  # 1.6: an absent reason means Local
        meter_stop_wh=float(kw["meter_stop"]),
        samples=meter_samples(kw.get("transaction_data")),
    )


def meter_values_tx(station_id: str, kw: dict[str, Any], samples: tuple[MeterSample, ...],
                    fallback_at: datetime) -> TxEvent:
    """MeterValues that name a transaction: an UPDATED transaction event."""
    return TxEvent(
        kind=TxEventKind.UPDATED,
        station_id=StationId(station_id),
        at=samples[-1].at if samples else fallback_at,
        charger_tx_id=str(kw["transaction_id"]),
        evse=evse_ref(kw["connector_id"]),
        samples=samples,
    )


def _required_ts(value: str) -> datetime:
    at = parse_ts(value)
    if at is None:
        raise BadPayload("timestamp missing", "occurrence")
    return at
