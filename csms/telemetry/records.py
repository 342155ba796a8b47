"""Pure mapping from committed domain facts to telemetry records (no I/O, no clock, no MQTT).

Every payload is a JSON object whose numeric fields carry their unit in the name (`power_w`, `energy_wh`,
`limit_w`, `soc_pct`, `duration_s`) and an `at` field: ISO 8601 UTC with milliseconds and a `Z` suffix,
taken from the event (never from a clock read here).

Records that describe *current state* are retained (a new subscriber immediately sees the latest value);
records that describe *something that happened* are not.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from csms.domain.events import (
    ChargingNeedsChanged,
    DomainEvent,
    ExternalLimitChanged,
    MeterSampled,
    OverstayChanged,
    StationOnline,
    StationReady,
    StatusChanged,
    TransactionChanged,
)
from csms.domain.model import Transaction

from . import topics

# Session event kinds. Services may publish other snake_case kinds; these are the documented ones.
SESSION_STARTED = "started"
SESSION_ENDED = "ended"
OVERSTAY_WARNING = "overstay_warning"
OVERSTAY_STARTED = "overstay_started"
OVERSTAY_ENDED = "overstay_ended"

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SESSION_RESERVED = frozenset({"event", "tx_key", "station_id", "at"})


@dataclasses.dataclass(frozen=True, slots=True)
class TelemetryRecord:
    """One message to publish. `topic` is relative to the configured prefix (see csms.telemetry.topics)."""

    topic: str
    kind: str
    payload: Mapping[str, Any]
    retain: bool = False


# --- helpers --------------------------------------------------------------------------------------
def iso_utc(at: datetime) -> str:
    """'2025-03-01T08:00:00.000Z'. A naive datetime is taken to be UTC already."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """Turn a value into something json.dumps accepts: datetimes -> ISO UTC strings, enums -> their value,
    Decimal -> exact decimal string, timedelta -> seconds, dataclasses -> objects, NaN/inf -> null."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    return str(value)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _station_of(tx_key: str) -> str:
    return tx_key.partition("/")[0]


# --- domain events --------------------------------------------------------------------------------
def event_records(event: DomainEvent) -> list[TelemetryRecord]:
    """The records a committed domain event produces (possibly none)."""
    match event:
        case StationOnline():
            return [station_status_record(event.station_id, event.online, event.at)]
        case StatusChanged():
            evse_id = event.evse.evse_id if event.evse else 0
            return [TelemetryRecord(
                topics.evse_status(event.station_id, evse_id), topics.EVSE_STATUS,
                {
                    "station_id": event.station_id,
                    "evse_id": evse_id,
                    "connector_id": event.evse.connector_id if event.evse else None,
                    "status": event.status.value,
                    "charging_state": event.charging_state.value if event.charging_state else None,
                    "at": iso_utc(event.at),
                },
                retain=True,
            )]
        case MeterSampled():
            evse_id = event.evse.evse_id if event.evse else 0
            return [_meter(event.station_id, evse_id, None, event.power_w, None, event.energy_wh, None,
                           event.at)]
        case TransactionChanged():
            return _transaction_records(event)
        case OverstayChanged():
            return [_overstay_record(event)] if event.phase in _OVERSTAY_KINDS else []
        case StationReady() | ChargingNeedsChanged() | ExternalLimitChanged():
            return []
    return []  # an event type added later: no telemetry until it is mapped here


_OVERSTAY_KINDS = {"warning": OVERSTAY_WARNING, "started": OVERSTAY_STARTED, "ended": OVERSTAY_ENDED}


def _overstay_record(ev: OverstayChanged) -> TelemetryRecord:
    """Billing's overstay phase change as a session event: minutes and fee (decimal string) so far."""
    return session_event_record(ev.tx_key, _OVERSTAY_KINDS[ev.phase], {
        "evse_id": ev.evse_id, "minutes": ev.minutes, "fee": ev.fee, "currency": ev.currency}, ev.at)


def station_status_record(station_id: str, online: bool, at: datetime) -> TelemetryRecord:
    return TelemetryRecord(
        topics.station_status(station_id), topics.STATION_STATUS,
        {"station_id": station_id, "online": online, "status": "online" if online else "offline",
         "at": iso_utc(at)},
        retain=True,
    )


def _meter(station_id: str, evse_id: int, tx_key: str | None, power_w: float | None, energy_wh: float | None,
           register_wh: float | None, soc_pct: float | None, at: datetime) -> TelemetryRecord:
    return TelemetryRecord(
        topics.evse_meter(station_id, evse_id), topics.EVSE_METER,
        {
            "station_id": station_id,
            "evse_id": evse_id,
            "tx_key": tx_key,
            "power_w": _num(power_w),
            "energy_wh": _num(energy_wh),
            "register_wh": _num(register_wh),
            "soc_pct": _num(soc_pct),
            "at": iso_utc(at),
        },
    )


def _transaction_records(ev: TransactionChanged) -> list[TelemetryRecord]:
    t: Transaction = ev.transaction
    out: list[TelemetryRecord] = []
    common = {"tx_key": t.key, "station_id": t.station_id, "evse_id": t.evse.evse_id,
              "connector_id": t.evse.connector_id, "charger_tx_id": t.charger_tx_id}
    if ev.started:
        out.append(TelemetryRecord(
            topics.session_event(t.key), topics.SESSION_EVENT,
            {"event": SESSION_STARTED, **common, "started_at": iso_utc(t.started_at),
             "meter_start_wh": _num(t.meter_start_wh), "group": t.group, "at": iso_utc(ev.at)},
        ))
    ended = ev.ended or t.ended_at is not None
    out.append(_meter(t.station_id, t.evse.evse_id, t.key, 0.0 if ended else t.power_w, t.energy_wh, None,
                      t.soc_pct, ev.at))
    if ev.ended:
        end = t.ended_at or ev.at
        out.append(TelemetryRecord(
            topics.session_event(t.key), topics.SESSION_EVENT,
            {"event": SESSION_ENDED, **common, "started_at": iso_utc(t.started_at), "ended_at": iso_utc(end),
             "duration_s": max(0.0, (end - t.started_at).total_seconds()), "energy_wh": _num(t.energy_wh),
             "soc_pct": _num(t.soc_pct), "stop_reason": t.stop_reason, "at": iso_utc(ev.at)},
        ))
    return out


# --- published by services ------------------------------------------------------------------------
def site_load_record(site_id: str, load_w: float, limit_w: float | None, at: datetime) -> TelemetryRecord:
    """Site load against its effective limit. headroom_w = limit_w - load_w (negative when over the limit;
    null when there is no limit)."""
    load = _num(load_w)
    limit = _num(limit_w)
    headroom = None if limit is None or load is None else limit - load
    return TelemetryRecord(
        topics.site_load(site_id), topics.SITE_LOAD,
        {"site_id": site_id, "load_w": load, "limit_w": limit, "headroom_w": headroom, "at": iso_utc(at)},
        retain=True,
    )


def plan_record(site_id: str, plan: Mapping[str, Any], at: datetime) -> TelemetryRecord:
    """The site's current plan, retained. `plan` is the smart-charging service's JSON-able summary; its
    keys are kept at the top level next to `site_id` and `at` (which win over keys of the same name)."""
    body = jsonable(plan)
    if not isinstance(body, dict):
        raise TypeError("plan must be a mapping")
    return TelemetryRecord(
        topics.site_plan(site_id), topics.SITE_PLAN, {**body, "site_id": site_id, "at": iso_utc(at)},
        retain=True,
    )


def session_event_record(tx_key: str, kind: str, detail: Mapping[str, Any], at: datetime) -> TelemetryRecord:
    """A session event such as OVERSTAY_WARNING. `kind` must be snake_case; `detail` keys are added to the
    payload and must not be one of event, tx_key, station_id, at."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"session event kind must be snake_case, got {kind!r}")
    clash = _SESSION_RESERVED & set(detail)
    if clash:
        raise ValueError(f"session event detail must not set {sorted(clash)}")
    return TelemetryRecord(
        topics.session_event(tx_key), topics.SESSION_EVENT,
        {"event": kind, "tx_key": tx_key, "station_id": _station_of(tx_key), **jsonable(dict(detail)),
         "at": iso_utc(at)},
    )


# --- inbound --------------------------------------------------------------------------------------
class InvalidLimit(ValueError):
    """A limit/set payload that cannot be understood. The message says what was expected."""


def parse_limit_set(payload: bytes | str) -> float | None:
    """kW from a limit/set payload: `{"limit_kw": 80}`, a bare number `80`, `{"limit_kw": null}` / `null` /
    an empty payload (clear the override). Raises InvalidLimit for anything else."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError:
        raise InvalidLimit("payload is not UTF-8 text") from None
    text = text.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidLimit(f'not JSON: {text[:80]!r}; expected {{"limit_kw": <kW>}} or a bare number of kW') \
            from None
    if isinstance(value, dict):
        if "limit_kw" not in value:
            raise InvalidLimit(f'missing "limit_kw" in {text[:80]}; expected {{"limit_kw": <kW or null>}}')
        value = value["limit_kw"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidLimit(f"limit must be a number of kW or null, got {value!r}")
    kw = float(value)
    if not math.isfinite(kw) or kw < 0:
        raise InvalidLimit(f"limit must be a finite number of kW >= 0, got {value!r}")
    return kw
