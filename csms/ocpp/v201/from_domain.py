"""Domain values -> OCPP 2.0.1 answers (call_result dataclasses) and request payloads (camelCase). Pure.

Also the parsers of the charger's answers (composite schedule, variables, capabilities) and the map
from 1.6-style configuration keys to 2.0.1 component/variable pairs, so the gateway's
get_configuration/change_configuration speak one language for both versions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.v201 import call_result, datatypes
from ocpp.v201.enums import AuthorizationStatusEnumType as V201Auth

from csms.domain.certificates import CertificateHashData, CertificateUse, SigningUse
from csms.domain.enums import AuthorizationStatus, ProfilePurpose, RateUnit
from csms.domain.ids import EvseRef
from csms.domain.model import AuthorizationResult, Capabilities, ChargingProfile, TxReply
from csms.domain.ports import BootReply
from csms.ocpp.certs import hash_data_of, hash_data_payload, hash_row
from csms.ocpp.common import format_ts, parse_ts

#: Exhaustive (tested): the domain's statuses are a subset of 2.0.1's.
AUTH_STATUS: dict[AuthorizationStatus, V201Auth] = {
    AuthorizationStatus.ACCEPTED: V201Auth.accepted,
    AuthorizationStatus.BLOCKED: V201Auth.blocked,
    AuthorizationStatus.EXPIRED: V201Auth.expired,
    AuthorizationStatus.INVALID: V201Auth.invalid,
    AuthorizationStatus.CONCURRENT_TX: V201Auth.concurrent_tx,
    AuthorizationStatus.UNKNOWN: V201Auth.unknown,
}

#: Neutral trigger names that 2.0.1 spells differently.
TRIGGER: dict[str, str] = {"DiagnosticsStatusNotification": "LogStatusNotification",
                           "SignChargePointCertificate": "SignChargingStationCertificate"}

#: Well-known 1.6 configuration keys -> (component, variable). Any other key is "Component.Variable".
VARIABLES: dict[str, tuple[str, str]] = {
    "HeartbeatInterval": ("OCPPCommCtrlr", "HeartbeatInterval"),
    "WebSocketPingInterval": ("OCPPCommCtrlr", "WebSocketPingInterval"),
    "ResetRetries": ("OCPPCommCtrlr", "ResetRetries"),
    "MeterValueSampleInterval": ("SampledDataCtrlr", "TxUpdatedInterval"),
    "MeterValuesSampledData": ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "StopTxnSampledData": ("SampledDataCtrlr", "TxEndedMeasurands"),
    "ClockAlignedDataInterval": ("AlignedDataCtrlr", "Interval"),
    "MeterValuesAlignedData": ("AlignedDataCtrlr", "Measurands"),
    "ConnectionTimeOut": ("TxCtrlr", "EVConnectionTimeOut"),
    "StopTransactionOnEVSideDisconnect": ("TxCtrlr", "StopTxOnEVSideDisconnect"),
    "StopTransactionOnInvalidId": ("TxCtrlr", "StopTxOnInvalidId"),
    "AuthorizeRemoteTxRequests": ("AuthCtrlr", "AuthorizeRemoteStart"),
    "LocalAuthorizeOffline": ("AuthCtrlr", "LocalAuthorizeOffline"),
    "LocalPreAuthorize": ("AuthCtrlr", "LocalPreAuthorize"),
    "ChargingScheduleAllowedChargingRateUnit": ("SmartChargingCtrlr", "RateUnit"),
    "ChargingScheduleMaxPeriods": ("SmartChargingCtrlr", "PeriodsPerSchedule"),
    "ChargeProfileMaxStackLevel": ("SmartChargingCtrlr", "ProfileStackLevel"),
}

CAPABILITY_KEYS = ["SmartChargingCtrlr.RateUnit", "SmartChargingCtrlr.PeriodsPerSchedule",
                   "SmartChargingCtrlr.ProfileStackLevel", "SmartChargingCtrlr.Enabled"]

#: The idToken type used when the CSMS names a token it has no record of (known tokens carry their own type,
#: id_tokens[].type in config.yaml or the API).
DEFAULT_TOKEN_TYPE = "ISO14443"


# --- answers to the charger's CALLs --------------------------------------------------------------
def boot_result(reply: BootReply, now: datetime) -> call_result.BootNotification:
    return call_result.BootNotification(current_time=format_ts(now), interval=reply.interval_s,
                                        status=reply.status.value)


def id_token_info(auth: AuthorizationResult | None) -> datatypes.IdTokenInfoType:
    """A missing authorization (the CSMS gave no verdict) is answered Unknown, never Accepted."""
    if auth is None:
        return datatypes.IdTokenInfoType(status=V201Auth.unknown)
    return datatypes.IdTokenInfoType(
        status=AUTH_STATUS[auth.status],
        cache_expiry_date_time=format_ts(auth.expires_at) if auth.expires_at else None,
        group_id_token=datatypes.IdTokenType(id_token=auth.group, type="Central") if auth.group else None,
    )


def authorize_result(auth: AuthorizationResult | None, certificate_status: str | None) -> call_result.Authorize:
    """Authorize, with the contract certificate's status when the request carried certificate data. A token
    whose certificate is not Accepted is not authorized either (Invalid), whatever its own record says."""
    info = id_token_info(auth)
    if certificate_status is not None and certificate_status != "Accepted":
        info = datatypes.IdTokenInfoType(status=V201Auth.invalid)
    return call_result.Authorize(id_token_info=info, certificate_status=certificate_status)


def transaction_event_result(reply: TxReply, had_id_token: bool) -> call_result.TransactionEvent:
    """idTokenInfo whenever the request carried an idToken; totalCost when the CSMS knows it."""
    return call_result.TransactionEvent(
        total_cost=round(reply.total_cost, 2) if reply.total_cost is not None else None,
        id_token_info=id_token_info(reply.authorization) if had_id_token else None,
    )


# --- our requests --------------------------------------------------------------------------------
def id_token(value: str, type_: str = DEFAULT_TOKEN_TYPE) -> dict[str, Any]:
    return {"idToken": value, "type": type_}


def remote_start(evse_id: int | None, token: str, remote_start_id: int,
                 token_type: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"idToken": id_token(token, token_type or DEFAULT_TOKEN_TYPE),
                         "remoteStartId": remote_start_id}
    if evse_id is not None:
        p["evseId"] = evse_id
    return p


def remote_stop(charger_tx_id: str) -> dict[str, Any]:
    return {"transactionId": charger_tx_id}


def charging_profile(profile: ChargingProfile) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "id": profile.profile_id,
        "chargingRateUnit": profile.unit.value,
        "chargingSchedulePeriod": [
            {"startPeriod": p.start_offset_s, "limit": round(p.limit, 1),
             **({"numberPhases": p.number_phases} if p.number_phases else {})}
            for p in profile.periods
        ],
    }
    if profile.duration_s is not None:
        schedule["duration"] = profile.duration_s
    if profile.start is not None:
        schedule["startSchedule"] = format_ts(profile.start)
    out: dict[str, Any] = {
        "id": profile.profile_id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": profile.purpose.value,
        "chargingProfileKind": "Absolute" if profile.start is not None else "Relative",
        "chargingSchedule": [schedule],
    }
    if profile.purpose is ProfilePurpose.TX and profile.charger_tx_id is not None:
        out["transactionId"] = profile.charger_tx_id
    if profile.valid_from is not None:
        out["validFrom"] = format_ts(profile.valid_from)
    if profile.valid_to is not None:
        out["validTo"] = format_ts(profile.valid_to)
    return out


def set_charging_profile(evse_id: int, profile: ChargingProfile) -> dict[str, Any]:
    """A ChargingStationMaxProfile always goes to EVSE 0 (2.0.1 requires it)."""
    target = 0 if profile.purpose is ProfilePurpose.STATION_MAX else evse_id
    return {"evseId": target, "chargingProfile": charging_profile(profile)}


def purpose_word(purpose: str) -> str:
    """A neutral purpose or a 1.6 word -> the 2.0.1 word."""
    return "ChargingStationMaxProfile" if purpose == "ChargePointMaxProfile" else purpose


def clear_charging_profile(profile_id: int | None, evse_id: int | None, purpose: str | None) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if profile_id is not None:
        p["chargingProfileId"] = profile_id
    criteria: dict[str, Any] = {}
    if evse_id is not None:
        criteria["evseId"] = evse_id
    if purpose is not None:
        criteria["chargingProfilePurpose"] = purpose_word(purpose)
    if criteria:
        p["chargingProfileCriteria"] = criteria
    return p


def get_composite_schedule(evse_id: int, duration_s: int, unit: str | None) -> dict[str, Any]:
    p: dict[str, Any] = {"evseId": evse_id, "duration": duration_s}
    if unit is not None:
        p["chargingRateUnit"] = unit
    return p


def change_availability(evse_id: int | None, operative: bool) -> dict[str, Any]:
    p: dict[str, Any] = {"operationalStatus": "Operative" if operative else "Inoperative"}
    if evse_id:
        p["evse"] = {"id": evse_id}
    return p


def reset(hard: bool) -> dict[str, Any]:
    """Soft -> OnIdle (waits for transactions to end), Hard -> Immediate."""
    return {"type": "Immediate" if hard else "OnIdle"}


def unlock_connector(ref: EvseRef) -> dict[str, Any]:
    return {"evseId": ref.evse_id, "connectorId": ref.connector_id}


def reserve_now(reservation_id: int, evse_id: int | None, token: str, expires_at: datetime,
                token_type: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"id": reservation_id, "expiryDateTime": format_ts(expires_at),
                         "idToken": id_token(token, token_type or DEFAULT_TOKEN_TYPE)}
    if evse_id is not None:
        p["evseId"] = evse_id
    return p


def cancel_reservation(reservation_id: int) -> dict[str, Any]:
    return {"reservationId": reservation_id}


def trigger_message(message: str, evse_id: int | None) -> dict[str, Any]:
    p: dict[str, Any] = {"requestedMessage": TRIGGER.get(message, message)}
    if evse_id is not None:
        p["evse"] = {"id": evse_id}
    return p


def variable(key: str) -> tuple[str, str] | None:
    """A configuration key -> (component, variable): a well-known 1.6 key or "Component.Variable"."""
    if key in VARIABLES:
        return VARIABLES[key]
    comp, dot, var = key.partition(".")
    return (comp, var) if dot and comp and var else None


def get_variables(keys: list[str]) -> dict[str, Any]:
    pairs = dict.fromkeys(cv for cv in (variable(k) for k in keys) if cv is not None)  # unique, in order
    return {"getVariableData": [{"component": {"name": c}, "variable": {"name": v}} for c, v in pairs]}


def set_variables(key: str, value: str) -> dict[str, Any] | None:
    cv = variable(key)
    if cv is None:
        return None
    return {"setVariableData": [{"attributeValue": value, "component": {"name": cv[0]},
                                 "variable": {"name": cv[1]}}]}


# --- the charger's answers -----------------------------------------------------------------------
def composite_schedule(answer: dict[str, Any]) -> dict[str, Any]:
    sched = answer.get("schedule") or {}
    start = parse_ts(sched.get("scheduleStart"))
    return {
        "schedule_start": start.isoformat() if start else None,
        "unit": sched.get("chargingRateUnit"),
        "duration_s": sched.get("duration"),
        "periods": [{"start_offset_s": p["startPeriod"], "limit": float(p["limit"]),
                     "number_phases": p.get("numberPhases")} for p in sched.get("chargingSchedulePeriod", ())],
        "raw": answer,
    }


def variables(keys: list[str], answer: dict[str, Any]) -> dict[str, Any]:
    """GetVariables answer, keyed back by the caller's key names."""
    by_cv = {(r["component"]["name"], r["variable"]["name"]): r for r in answer.get("getVariableResult", ())}
    values: dict[str, str | None] = {}
    unknown: list[str] = []
    for k in keys:
        cv = variable(k)
        r = by_cv.get(cv) if cv else None
        if r is not None and r["attributeStatus"] == "Accepted":
            values[k] = r.get("attributeValue")
        else:
            unknown.append(k)
    return {"values": values, "readonly": [], "unknown": unknown}


def set_variable_status(answer: dict[str, Any]) -> str:
    results = answer.get("setVariableResult") or [{}]
    return str(results[0].get("attributeStatus", "Rejected"))


def capabilities(values: dict[str, str | None]) -> Capabilities:
    units = {RateUnit(u.strip()) for u in (values.get("SmartChargingCtrlr.RateUnit") or "").split(",")
             if u.strip() in ("A", "W")}
    enabled = values.get("SmartChargingCtrlr.Enabled")
    return Capabilities(
        rate_units=frozenset(units) if units else frozenset({RateUnit.AMPS}),
        smart_charging=True if enabled is None else enabled.strip().lower() == "true",
        max_schedule_periods=_int(values.get("SmartChargingCtrlr.PeriodsPerSchedule")),
        max_stack_level=_int(values.get("SmartChargingCtrlr.ProfileStackLevel")),
    )


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


# --- certificates ----------------------------------------------------------------------------------
def certificate_signed(chain_pem: str, use: SigningUse) -> dict[str, Any]:
    return {"certificateChain": chain_pem, "certificateType": use.value}


def install_certificate(use: CertificateUse, pem: str) -> dict[str, Any] | None:
    """None: not a use a certificate can be installed for (V2GCertificateChain is only ever reported)."""
    if use is CertificateUse.V2G_CHAIN:
        return None
    return {"certificateType": use.value, "certificate": pem}


def get_installed_certificate_ids(uses: list[CertificateUse] | None) -> dict[str, Any]:
    return {"certificateType": [u.value for u in uses]} if uses else {}


def installed_certificates(answer: dict[str, Any]) -> list[dict[str, str]]:
    """Every certificate the answer names: each chain's certificate, then its children (same use)."""
    rows = []
    for chain in answer.get("certificateHashDataChain") or []:
        rows.append(hash_row(chain["certificateType"], hash_data_of(chain["certificateHashData"])))
        rows += [hash_row(chain["certificateType"], hash_data_of(c)) for c in chain.get("childCertificateHashData") or []]
    return rows


def delete_certificate(h: CertificateHashData) -> dict[str, Any]:
    return {"certificateHashData": hash_data_payload(h)}
