"""Domain values -> OCPP 1.6 answers (call_result dataclasses) and request payloads (camelCase). Pure.

Also the parsers of the charger's answers to our requests (composite schedule, configuration,
capabilities), which turn 1.6 words back into neutral data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.v16 import call_result, datatypes
from ocpp.v16.enums import AuthorizationStatus as V16Auth

from csms.domain.enums import AuthorizationStatus, ProfilePurpose, RateUnit
from csms.domain.ids import EvseRef
from csms.domain.model import AuthorizationResult, Capabilities, ChargingProfile
from csms.domain.ports import BootReply
from csms.domain.certificates import CertificateHashData, CertificateUse
from csms.ocpp.certs import hash_data_of, hash_data_payload, hash_row
from csms.ocpp.common import format_ts, parse_ts

#: 1.6 idTagInfo has no Unknown: a token the CSMS does not know is Invalid. Exhaustive (tested).
AUTH_STATUS: dict[AuthorizationStatus, V16Auth] = {
    AuthorizationStatus.ACCEPTED: V16Auth.accepted,
    AuthorizationStatus.BLOCKED: V16Auth.blocked,
    AuthorizationStatus.EXPIRED: V16Auth.expired,
    AuthorizationStatus.INVALID: V16Auth.invalid,
    AuthorizationStatus.CONCURRENT_TX: V16Auth.concurrent_tx,
    AuthorizationStatus.UNKNOWN: V16Auth.invalid,
}

PURPOSE: dict[ProfilePurpose, str] = {
    ProfilePurpose.STATION_MAX: "ChargePointMaxProfile",
    ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ProfilePurpose.TX: "TxProfile",
}

#: Neutral trigger names that 1.6 spells differently.
TRIGGER: dict[str, str] = {"LogStatusNotification": "DiagnosticsStatusNotification",
                           "TransactionEvent": "MeterValues"}

CAPABILITY_KEYS = ["ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
                   "ChargeProfileMaxStackLevel", "SupportedFeatureProfiles"]


# --- answers to the charger's CALLs --------------------------------------------------------------
def boot_result(reply: BootReply, now: datetime) -> call_result.BootNotification:
    return call_result.BootNotification(current_time=format_ts(now), interval=reply.interval_s,
                                        status=reply.status.value)


def id_tag_info(auth: AuthorizationResult | None) -> datatypes.IdTagInfo:
    """A missing authorization (the CSMS gave no verdict) is answered Invalid, never Accepted."""
    if auth is None:
        return datatypes.IdTagInfo(status=V16Auth.invalid)
    return datatypes.IdTagInfo(
        status=AUTH_STATUS[auth.status],
        expiry_date=format_ts(auth.expires_at) if auth.expires_at else None,
        parent_id_tag=auth.group[:20] if auth.group else None,
    )


# --- our requests --------------------------------------------------------------------------------
def _connector(evse_id: int | None) -> int:
    return 0 if evse_id is None else evse_id


def remote_start(evse_id: int | None, id_token: str) -> dict[str, Any]:
    p: dict[str, Any] = {"idTag": id_token}
    if evse_id is not None:
        p["connectorId"] = evse_id
    return p


def remote_stop(charger_tx_id: str) -> dict[str, Any]:
    """1.6 transaction ids are integers (the ones this CSMS assigned). Raises ValueError otherwise."""
    return {"transactionId": int(charger_tx_id)}


def charging_profile(profile: ChargingProfile) -> dict[str, Any]:
    """csChargingProfiles. Limits get 1 decimal: the 1.6 schema says multipleOf 0.1."""
    schedule: dict[str, Any] = {
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
        "chargingProfileId": profile.profile_id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": PURPOSE[profile.purpose],
        "chargingProfileKind": "Absolute" if profile.start is not None else "Relative",
        "chargingSchedule": schedule,
    }
    if profile.purpose is ProfilePurpose.TX and profile.charger_tx_id is not None:
        out["transactionId"] = int(profile.charger_tx_id)
    if profile.valid_from is not None:
        out["validFrom"] = format_ts(profile.valid_from)
    if profile.valid_to is not None:
        out["validTo"] = format_ts(profile.valid_to)
    return out


def set_charging_profile(evse_id: int, profile: ChargingProfile) -> dict[str, Any]:
    """A ChargePointMaxProfile always goes to connector 0 (1.6 requires it)."""
    connector = 0 if profile.purpose is ProfilePurpose.STATION_MAX else evse_id
    return {"connectorId": connector, "csChargingProfiles": charging_profile(profile)}


def purpose_word(purpose: str) -> str:
    """A neutral purpose (ProfilePurpose value) or a 1.6 word -> the 1.6 word."""
    try:
        return PURPOSE[ProfilePurpose(purpose)]
    except ValueError:
        return purpose


def clear_charging_profile(profile_id: int | None, evse_id: int | None, purpose: str | None) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if profile_id is not None:
        p["id"] = profile_id
    if evse_id is not None:
        p["connectorId"] = evse_id
    if purpose is not None:
        p["chargingProfilePurpose"] = purpose_word(purpose)
    return p


def get_composite_schedule(evse_id: int, duration_s: int, unit: str | None) -> dict[str, Any]:
    p: dict[str, Any] = {"connectorId": evse_id, "duration": duration_s}
    if unit is not None:
        p["chargingRateUnit"] = unit
    return p


def change_availability(evse_id: int | None, operative: bool) -> dict[str, Any]:
    return {"connectorId": _connector(evse_id), "type": "Operative" if operative else "Inoperative"}


def reset(hard: bool) -> dict[str, Any]:
    return {"type": "Hard" if hard else "Soft"}


def unlock_connector(evse: EvseRef) -> dict[str, Any]:
    return {"connectorId": evse.evse_id}


def reserve_now(reservation_id: int, evse_id: int | None, id_token: str, expires_at: datetime) -> dict[str, Any]:
    """evse None reserves any connector: 1.6 connectorId 0."""
    return {"connectorId": _connector(evse_id), "expiryDate": format_ts(expires_at), "idTag": id_token,
            "reservationId": reservation_id}


def cancel_reservation(reservation_id: int) -> dict[str, Any]:
    return {"reservationId": reservation_id}


def trigger_message(message: str, evse_id: int | None) -> dict[str, Any]:
    p: dict[str, Any] = {"requestedMessage": TRIGGER.get(message, message)}
    if evse_id is not None:
        p["connectorId"] = evse_id
    return p


def get_configuration(keys: list[str] | None) -> dict[str, Any]:
    return {"key": list(keys)} if keys else {}


def change_configuration(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": value}


# --- the charger's answers -----------------------------------------------------------------------
def composite_schedule(answer: dict[str, Any]) -> dict[str, Any]:
    """Neutral view of a GetCompositeSchedule answer, plus the raw payload."""
    sched = answer.get("chargingSchedule") or {}
    start = parse_ts(answer.get("scheduleStart") or sched.get("startSchedule"))
    return {
        "schedule_start": start.isoformat() if start else None,
        "unit": sched.get("chargingRateUnit"),
        "duration_s": sched.get("duration"),
        "periods": [{"start_offset_s": p["startPeriod"], "limit": float(p["limit"]),
                     "number_phases": p.get("numberPhases")} for p in sched.get("chargingSchedulePeriod", ())],
        "raw": answer,
    }


def configuration(answer: dict[str, Any]) -> dict[str, Any]:
    keys = answer.get("configurationKey") or []
    return {
        "values": {k["key"]: k.get("value") for k in keys},
        "readonly": [k["key"] for k in keys if k.get("readonly")],
        "unknown": list(answer.get("unknownKey") or []),
    }


def capabilities(values: dict[str, str | None]) -> Capabilities:
    """From GetConfiguration values. ChargingScheduleAllowedChargingRateUnit is "Current", "Power",
    "Current,Power" (some stations write "A,W")."""
    units: set[RateUnit] = set()
    for word in (values.get("ChargingScheduleAllowedChargingRateUnit") or "").split(","):
        w = word.strip().lower()
        if w in ("current", "a"):
            units.add(RateUnit.AMPS)
        elif w in ("power", "w"):
            units.add(RateUnit.WATTS)
    profiles = values.get("SupportedFeatureProfiles")
    return Capabilities(
        rate_units=frozenset(units) if units else frozenset({RateUnit.AMPS}),
        smart_charging=True if profiles is None else "smartcharging" in profiles.replace(" ", "").lower(),
        max_schedule_periods=_int(values.get("ChargingScheduleMaxPeriods")),
        max_stack_level=_int(values.get("ChargeProfileMaxStackLevel")),
    )


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


# --- certificates (the 1.6 security whitepaper's messages) -------------------------------------------
#: The two uses 1.6 knows, and its name for the CSMS root.
CERTIFICATE_USE: dict[CertificateUse, str] = {
    CertificateUse.CSMS_ROOT: "CentralSystemRootCertificate",
    CertificateUse.MANUFACTURER_ROOT: "ManufacturerRootCertificate",
}
#: TriggerMessage words that 1.6 sends as ExtendedTriggerMessage(SignChargePointCertificate).
SIGN_TRIGGERS = frozenset({"SignChargingStationCertificate", "SignChargePointCertificate"})


def certificate_signed(chain_pem: str) -> dict[str, Any]:
    return {"certificateChain": chain_pem}


def install_certificate(use: CertificateUse, pem: str) -> dict[str, Any] | None:
    """None: 1.6 has no such certificate use (V2G and MO roots are ISO 15118, a 2.0.1 feature)."""
    word = CERTIFICATE_USE.get(use)
    return None if word is None else {"certificateType": word, "certificate": pem}


def get_installed_certificate_ids(use: CertificateUse) -> dict[str, Any]:
    return {"certificateType": CERTIFICATE_USE[use]}


def installed_certificates(use: CertificateUse, answer: dict[str, Any]) -> list[dict[str, str]]:
    return [hash_row(use.value, hash_data_of(h)) for h in answer.get("certificateHashData") or []]


def delete_certificate(h: CertificateHashData) -> dict[str, Any]:
    return {"certificateHashData": hash_data_payload(h)}


def extended_trigger(message: str, evse_id: int | None) -> dict[str, Any]:
    p: dict[str, Any] = {"requestedMessage": "SignChargePointCertificate" if message in SIGN_TRIGGERS else message}
    if evse_id is not None:
        p["connectorId"] = evse_id
    return p
