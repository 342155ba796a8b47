"""PURE OCPP smart-charging profile evaluation, as a charging station must do it.

Both OCPP 1.6 and 2.0.1 profiles are parsed into one neutral :class:`ChargingProfile`:

=====================  ==============================  ===========================
neutral ``Purpose``    OCPP 1.6                         OCPP 2.0.1
=====================  ==============================  ===========================
``STATION_MAX``        ChargePointMaxProfile            ChargingStationMaxProfile
``EXTERNAL``           (none)                           ChargingStationExternalConstraints
``TX_DEFAULT``         TxDefaultProfile                 TxDefaultProfile
``TX``                 TxProfile                        TxProfile
=====================  ==============================  ===========================

Rules implemented (OCPP 1.6 §3.13 / 2.0.1 K01, K08):

* per purpose, the *active* profile with the highest ``stackLevel`` wins. Active means: within
  ``validFrom``/``validTo``, its schedule has started and (if it has a ``duration``) not ended. A profile
  whose schedule ran out falls back to the next lower stack level;
* a ``TxProfile`` only applies to the running transaction (``transactionId`` must match when given); it
  overrides ``TxDefaultProfile``. A ``TxDefaultProfile`` on the EVSE overrides one set on EVSE 0;
* ``STATION_MAX`` and ``EXTERNAL`` cap everything; so does the station's hardware maximum;
* schedules: ``Absolute`` (from ``startSchedule``), ``Relative`` (from the transaction start),
  ``Recurring`` ``Daily``/``Weekly`` (``startSchedule`` repeated); ``chargingSchedulePeriod.startPeriod``
  in seconds from the schedule start;
* a limit in A is converted to W with ``min(numberPhases (default 3), phases in use) * voltage``.

Parsers accept snake_case dicts (what the ``ocpp`` library hands to handlers) and camelCase dicts (wire).
No asyncio, no clock reads: ``now`` is always a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

DEFAULT_PHASES = 3


class Purpose(StrEnum):
    STATION_MAX = "StationMax"
    EXTERNAL = "External"
    TX_DEFAULT = "TxDefault"
    TX = "Tx"


class Kind(StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class Recurrency(StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class RateUnit(StrEnum):
    A = "A"
    W = "W"


_PURPOSES: dict[str, Purpose] = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "ChargingStationMaxProfile": Purpose.STATION_MAX,
    "ChargingStationExternalConstraints": Purpose.EXTERNAL,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
V16_PURPOSE_NAMES = {
    Purpose.STATION_MAX: "ChargePointMaxProfile",
    Purpose.TX_DEFAULT: "TxDefaultProfile",
    Purpose.TX: "TxProfile",
}
V201_PURPOSE_NAMES = {
    Purpose.STATION_MAX: "ChargingStationMaxProfile",
    Purpose.EXTERNAL: "ChargingStationExternalConstraints",
    Purpose.TX_DEFAULT: "TxDefaultProfile",
    Purpose.TX: "TxProfile",
}


class ProfileError(ValueError):
    """A charging profile that a station must reject."""


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    start: datetime | None = None
    duration_s: int | None = None
    min_rate: float | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """Version-neutral charging profile as installed on one EVSE (``evse_id`` 0 = whole station)."""

    id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedule: Schedule
    evse_id: int = 0
    recurrency: Recurrency | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    received_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Limit:
    """One profile's limit at an instant."""

    value: float
    unit: RateUnit
    number_phases: int | None

    def to_w(self, voltage_v: float, phases_in_use: int) -> float:
        if self.unit is RateUnit.W:
            return self.value
        return self.value * voltage_v * min(self.number_phases or DEFAULT_PHASES, phases_in_use)


@dataclass(frozen=True, slots=True)
class EffectiveLimit:
    """The limit a station applies on an EVSE at ``at``; ``next_change`` is when it may change next."""

    at: datetime
    limit_w: float
    limit_a: float
    phases: int
    next_change: datetime | None
    sources: tuple[int, ...] = ()  # ids of the profiles that bind (empty = hardware maximum)


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    evse_id: int
    start: datetime
    duration_s: int
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]


# --------------------------------------------------------------------------------------------- parsing
def _snake(key: str) -> str:
    key = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", key)
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", key).lower()


def _norm(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {_snake(str(k)): _norm(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_norm(v) for v in data]
    return data


def parse_time(value: str | datetime | None) -> datetime | None:
    """Parse an OCPP timestamp (``Z`` or offset; naive means UTC) into an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(value.strip().replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _schedule(d: Mapping[str, Any]) -> Schedule:
    try:
        unit = RateUnit(str(d["charging_rate_unit"]).upper())
    except (KeyError, ValueError) as exc:
        raise ProfileError(f"bad chargingRateUnit: {d.get('charging_rate_unit')!r}") from exc
    raw_periods = d.get("charging_schedule_period") or []
    periods = []
    for p in raw_periods:
        try:
            periods.append(
                SchedulePeriod(
                    start_s=int(p["start_period"]),
                    limit=float(p["limit"]),
                    number_phases=int(p["number_phases"]) if p.get("number_phases") is not None else None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"bad chargingSchedulePeriod: {p!r}") from exc
    duration = d.get("duration")
    return Schedule(
        unit=unit,
        periods=tuple(periods),
        start=parse_time(d.get("start_schedule")),
        duration_s=int(duration) if duration is not None else None,
        min_rate=float(d["min_charging_rate"]) if d.get("min_charging_rate") is not None else None,
    )


def _common(d: Mapping[str, Any], profile_id: Any, schedule: Mapping[str, Any], evse_id: int,
            received_at: datetime | None, raw: Mapping[str, Any]) -> ChargingProfile:
    try:
        purpose = _PURPOSES[str(d["charging_profile_purpose"])]
        kind = Kind(str(d["charging_profile_kind"]))
        rec = d.get("recurrency_kind")
        tx = d.get("transaction_id")
        return ChargingProfile(
            id=int(profile_id),
            stack_level=int(d["stack_level"]),
            purpose=purpose,
            kind=kind,
            schedule=_schedule(schedule),
            evse_id=int(evse_id),
            recurrency=Recurrency(str(rec)) if rec is not None else None,
            valid_from=parse_time(d.get("valid_from")),
            valid_to=parse_time(d.get("valid_to")),
            transaction_id=str(tx) if tx is not None else None,
            received_at=received_at,
            raw=dict(raw),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(f"malformed charging profile: {exc}") from exc


def from_v16(profile: Mapping[str, Any], connector_id: int, received_at: datetime | None = None
             ) -> ChargingProfile:
    """Parse a 1.6 ``csChargingProfiles`` (connectorId 0 = whole station)."""
    d = _norm(profile)
    if "charging_schedule" not in d or not isinstance(d["charging_schedule"], Mapping):
        raise ProfileError("missing chargingSchedule")
    return _common(d, d.get("charging_profile_id"), d["charging_schedule"], connector_id, received_at, profile)


def from_v201(profile: Mapping[str, Any], evse_id: int, received_at: datetime | None = None
              ) -> ChargingProfile:
    """Parse a 2.0.1 ``chargingProfile`` (evseId 0 = whole station). Uses the first ``chargingSchedule``."""
    d = _norm(profile)
    schedules = d.get("charging_schedule")
    if isinstance(schedules, Mapping):
        schedules = [schedules]
    if not schedules:
        raise ProfileError("missing chargingSchedule")
    return _common(d, d.get("id"), schedules[0], evse_id, received_at, profile)


# ------------------------------------------------------------------------------------------ validation
@dataclass(frozen=True, slots=True)
class ValidationRules:
    """What a station accepts (1.6 config keys ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods,
    ChargingScheduleAllowedChargingRateUnit)."""

    max_stack_level: int = 8
    max_periods: int = 48
    allowed_units: frozenset[RateUnit] = frozenset({RateUnit.A, RateUnit.W})
    evse_ids: frozenset[int] = frozenset({1})


def validate(p: ChargingProfile, rules: ValidationRules, *, active_tx_id: str | None,
             require_tx_id: bool = False) -> None:
    """Raise :class:`ProfileError` if a station must reject ``p``.

    ``active_tx_id`` is the transaction running on ``p.evse_id`` (``None`` if none). ``require_tx_id``
    is set for 2.0.1, where a TxProfile must carry the transactionId.
    """
    if p.evse_id != 0 and p.evse_id not in rules.evse_ids:
        raise ProfileError(f"unknown EVSE/connector {p.evse_id}")
    if not 0 <= p.stack_level <= rules.max_stack_level:
        raise ProfileError(f"stackLevel {p.stack_level} outside 0..{rules.max_stack_level}")
    if p.schedule.unit not in rules.allowed_units:
        raise ProfileError(f"chargingRateUnit {p.schedule.unit} not supported")
    periods = p.schedule.periods
    if not periods:
        raise ProfileError("no chargingSchedulePeriod")
    if len(periods) > rules.max_periods:
        raise ProfileError(f"more than {rules.max_periods} periods")
    if periods[0].start_s != 0:
        raise ProfileError("first startPeriod must be 0")
    if any(b.start_s <= a.start_s for a, b in zip(periods, periods[1:], strict=False)):
        raise ProfileError("startPeriod values must increase")
    if any(x.limit < 0 for x in periods):
        raise ProfileError("negative limit")
    if any(x.number_phases is not None and x.number_phases not in (1, 2, 3) for x in periods):
        raise ProfileError("numberPhases must be 1..3")
    if p.purpose is Purpose.STATION_MAX and p.evse_id != 0:
        raise ProfileError("station max profile must target EVSE/connector 0")
    if p.purpose is Purpose.EXTERNAL and p.evse_id != 0:
        raise ProfileError("external constraints must target EVSE 0")
    if p.purpose is Purpose.TX:
        if p.evse_id == 0:
            raise ProfileError("TxProfile needs a specific EVSE/connector")
        if active_tx_id is None:
            raise ProfileError("TxProfile without an active transaction")
        if require_tx_id and p.transaction_id is None:
            raise ProfileError("TxProfile without transactionId")
        if p.transaction_id is not None and p.transaction_id != active_tx_id:
            raise ProfileError("TxProfile transactionId does not match the active transaction")
    if p.kind is Kind.RECURRING and (p.recurrency is None or p.schedule.start is None):
        raise ProfileError("Recurring profile needs recurrencyKind and startSchedule")
    if p.valid_from and p.valid_to and p.valid_to <= p.valid_from:
        raise ProfileError("validTo before validFrom")


def install(installed: Iterable[ChargingProfile], p: ChargingProfile) -> list[ChargingProfile]:
    """Return the profile list after installing ``p``: a profile with the same id, or with the same
    purpose, stack level and EVSE (OCPP replacement rule), is replaced."""
    kept = [
        q for q in installed
        if q.id != p.id and not (q.purpose is p.purpose and q.stack_level == p.stack_level
                                 and q.evse_id == p.evse_id)
    ]
    return [*kept, p]


def clear(installed: Iterable[ChargingProfile], *, profile_id: int | None = None, evse_id: int | None = None,
          purpose: Purpose | None = None, stack_level: int | None = None) -> tuple[list[ChargingProfile], int]:
    """ClearChargingProfile: remove matching profiles; returns (remaining, number removed).

    With ``profile_id`` only that id matches; otherwise all given criteria must match (none = all).
    """
    def match(q: ChargingProfile) -> bool:
        if profile_id is not None:
            return q.id == profile_id
        return ((evse_id is None or q.evse_id == evse_id) and (purpose is None or q.purpose is purpose)
                and (stack_level is None or q.stack_level == stack_level))

    items = list(installed)
    kept = [q for q in items if not match(q)]
    return kept, len(items) - len(kept)


# ------------------------------------------------------------------------------------------ evaluation
def _schedule_start(p: ChargingProfile, now: datetime, tx_start: datetime | None) -> datetime:
    s = p.schedule
    if p.kind is Kind.RELATIVE:
        return tx_start or now
    if p.kind is Kind.RECURRING and s.start is not None:
        period = timedelta(days=7 if p.recurrency is Recurrency.WEEKLY else 1)
        k = (now - s.start) // period
        return s.start + k * period
    return s.start or p.received_at or now


def profile_limit(p: ChargingProfile, now: datetime, tx_start: datetime | None = None
                  ) -> tuple[Limit | None, datetime | None]:
    """Evaluate one profile at ``now``: (limit or ``None`` if not active, next instant it may change)."""
    bounds: list[datetime] = []
    if p.valid_from and now < p.valid_from:
        return None, p.valid_from
    if p.valid_to:
        if now >= p.valid_to:
            return None, None
        bounds.append(p.valid_to)
    start = _schedule_start(p, now, tx_start)
    s = p.schedule
    if p.kind is Kind.RECURRING:
        bounds.append(start + timedelta(days=7 if p.recurrency is Recurrency.WEEKLY else 1))
    offset = (now - start).total_seconds()
    if offset < 0:
        bounds.append(start)
        return None, min(bounds)
    if s.duration_s is not None:
        end = start + timedelta(seconds=s.duration_s)
        if now >= end:
            return None, min(bounds) if bounds else None
        bounds.append(end)
    current = None
    for period in s.periods:
        if period.start_s <= offset:
            current = period
        else:
            bounds.append(start + timedelta(seconds=period.start_s))
            break
    nxt = min(bounds) if bounds else None
    if current is None:
        return None, nxt
    return Limit(current.limit, s.unit, current.number_phases), nxt


def _pick(cands: Iterable[ChargingProfile], now: datetime, tx_start: datetime | None
          ) -> tuple[ChargingProfile | None, Limit | None, list[datetime]]:
    """Highest-stack active profile among ``cands`` (+ every candidate's next change)."""
    best: tuple[ChargingProfile, Limit] | None = None
    changes: list[datetime] = []
    for p in cands:
        lim, nxt = profile_limit(p, now, tx_start)
        if nxt is not None:
            changes.append(nxt)
        if lim is not None and (best is None or p.stack_level > best[0].stack_level):
            best = (p, lim)
    return (best[0], best[1], changes) if best else (None, None, changes)


def effective_limit(
    profiles: Iterable[ChargingProfile],
    *,
    evse_id: int,
    now: datetime,
    station_max_w: float,
    transaction_id: str | None = None,
    tx_start: datetime | None = None,
    voltage_v: float = 230.0,
    phases: int = DEFAULT_PHASES,
) -> EffectiveLimit:
    """The limit (W and per-phase A) the station applies on ``evse_id`` at ``now``.

    ``phases`` is the number of phases in use (EV and station); ``station_max_w`` is the hardware limit
    returned when no profile applies. ``evse_id=0`` evaluates the station-wide limit only.
    """
    items = list(profiles)
    changes: list[datetime] = []
    caps: list[tuple[float, int | None]] = [(station_max_w, None)]

    for purpose in (Purpose.STATION_MAX, Purpose.EXTERNAL):
        p, lim, ch = _pick((q for q in items if q.purpose is purpose), now, tx_start)
        changes += ch
        if p and lim:
            caps.append((lim.to_w(voltage_v, phases), p.id))

    if evse_id != 0:
        tx_cands = [q for q in items if q.purpose is Purpose.TX and q.evse_id == evse_id
                    and transaction_id is not None
                    and (q.transaction_id is None or q.transaction_id == transaction_id)]
        p, lim, ch = _pick(tx_cands, now, tx_start)
        changes += ch
        if p is None:
            for scope in (evse_id, 0):
                p, lim, ch = _pick((q for q in items if q.purpose is Purpose.TX_DEFAULT
                                    and q.evse_id == scope), now, tx_start)
                changes += ch
                if p is not None:
                    break
        if p and lim:
            caps.append((lim.to_w(voltage_v, phases), p.id))

    limit_w = min(c[0] for c in caps)
    sources = tuple(sorted(pid for w, pid in caps if pid is not None and w <= limit_w + 1e-9))
    future = [c for c in changes if c > now]
    return EffectiveLimit(
        at=now,
        limit_w=limit_w,
        limit_a=limit_w / (voltage_v * phases) if voltage_v > 0 and phases > 0 else 0.0,
        phases=phases,
        next_change=min(future) if future else None,
        sources=sources,
    )


def composite_schedule(
    profiles: Iterable[ChargingProfile],
    *,
    evse_id: int,
    start: datetime,
    duration_s: int,
    station_max_w: float,
    unit: RateUnit = RateUnit.W,
    transaction_id: str | None = None,
    tx_start: datetime | None = None,
    voltage_v: float = 230.0,
    phases: int = DEFAULT_PHASES,
    max_periods: int = 1024,
) -> CompositeSchedule:
    """GetCompositeSchedule: the effective limit over ``[start, start+duration_s)`` as periods."""
    items = list(profiles)
    end = start + timedelta(seconds=duration_s)
    t = start
    periods: list[SchedulePeriod] = []
    while t < end and len(periods) < max_periods:
        eff = effective_limit(items, evse_id=evse_id, now=t, station_max_w=station_max_w,
                              transaction_id=transaction_id, tx_start=tx_start, voltage_v=voltage_v,
                              phases=phases)
        value = eff.limit_w if unit is RateUnit.W else eff.limit_a
        value = round(value, 1)
        offset = int((t - start).total_seconds())
        if not periods or periods[-1].limit != value:
            periods.append(SchedulePeriod(offset, value, phases))
        if eff.next_change is None or eff.next_change <= t:
            break
        t = eff.next_change
    return CompositeSchedule(evse_id, start, duration_s, unit, tuple(periods))


def with_received_at(p: ChargingProfile, when: datetime) -> ChargingProfile:
    return replace(p, received_at=when)
