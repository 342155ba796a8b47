"""Energy per session from version-neutral meter readings.

The OCPP adapters have already turned Wh/kWh and 2.0.1 multipliers into Wh and W (see `units`).
This module turns a session's readings into `MeteredInterval`s, one per consecutive pair of
readings, and never produces negative or physically impossible energy: anomalies are repaired
conservatively (in the customer's favour) and reported, so that an operator can review them.

Source of truth, in order of preference:
1. The energy register (Energy.Active.Import.Register): billing-grade and cumulative, so a lost
   sample loses no energy. When some readings in between lack a register, the register delta
   across the gap is shared out over the sub-intervals (by integrated power when every reading in
   the gap has power, by time otherwise) and the gap is flagged as missing data.
2. Trapezoidal integration of Power.Active.Import, for chargers that send no register (or for
   the stretches before the first / after the last register reading).
3. Nothing: an interval with neither is billed 0 Wh and flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from itertools import groupby, pairwise
from typing import Any

from csms.billing._time import floor_wh, hours, require_aware, split_floor
from csms.billing.money import to_decimal

# Timestamps are stamped by the charger to the second and meters are class A/B (±1-2 %), so a
# delta a little above max_power × duration is normal; only beyond this factor is it impossible.
DEFAULT_TOLERANCE = Decimal("1.10")
_ZERO = Decimal(0)


class AnomalyKind(StrEnum):
    REGISTER_BACKWARDS = "register_backwards"  # register decreased and cannot be a restart: counted 0
    METER_RESET = "meter_reset"  # register restarted near 0: counted the new reading
    IMPOSSIBLE_JUMP = "impossible_jump"  # more than the connector can deliver: clamped to max
    NEGATIVE_POWER = "negative_power"  # power sample < 0 (noise or export): treated as 0
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"  # several readings at one instant: merged
    OUT_OF_ORDER = "out_of_order"  # readings not in time order: sorted
    MISSING_DATA = "missing_data"  # no usable register/power for an interval or the session


class IntervalSource(StrEnum):
    REGISTER = "register"
    POWER = "power"
    NONE = "none"  # no data: energy is 0 and the interval carries MISSING_DATA


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One sample. `at` must be tz-aware; values are already in Wh / W (see `units.to_wh`)."""

    at: datetime
    energy_register_wh: Decimal | None = None
    power_w: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_aware(self.at, "MeterReading.at"))
        if self.energy_register_wh is not None:
            object.__setattr__(self, "energy_register_wh", to_decimal(self.energy_register_wh, "energy"))
        if self.power_w is not None:
            object.__setattr__(self, "power_w", to_decimal(self.power_w, "power_w"))


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    at: datetime | None  # None only when the session has no reading at all
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "at": self.at.isoformat() if self.at else None, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class MeteredInterval:
    start: datetime
    end: datetime
    energy_wh: Decimal  # >= 0, at milli-Wh resolution
    source: IntervalSource
    flags: frozenset[AnomalyKind] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "energy_wh": str(self.energy_wh),
            "source": str(self.source),
            "flags": sorted(str(f) for f in self.flags),
        }


@dataclass(frozen=True, slots=True)
class MeteringResult:
    intervals: tuple[MeteredInterval, ...]
    total_energy_wh: Decimal
    anomalies: tuple[Anomaly, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Limits:
    max_power_w: Decimal
    tolerance: Decimal

    def bounds_wh(self, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
        """(physical maximum, maximum accepted before flagging) for an interval, in Wh."""
        physical = self.max_power_w * hours(end - start)
        return physical, physical * self.tolerance


def meter_session(
    readings: Iterable[MeterReading],
    *,
    max_power_w: Decimal,
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> MeteringResult:
    """Split a session's readings into metered intervals, repairing and flagging anomalies.

    `max_power_w` is the most the connector can deliver (W); an interval whose energy exceeds
    max_power_w × duration × `tolerance` is clamped to max_power_w × duration and flagged.
    Readings may arrive in any order and may repeat timestamps. The result's total is the sum of
    the intervals, always >= 0 and <= max_power_w × tolerance × (last - first reading).
    """
    limits = _Limits(to_decimal(max_power_w, "max_power_w"), to_decimal(tolerance, "tolerance"))
    if limits.max_power_w < 0 or limits.tolerance < 1:
        raise ValueError("max_power_w must be >= 0 and tolerance >= 1")
    anomalies: list[Anomaly] = []
    merged = _dedupe(_sort(list(readings), anomalies), anomalies)
    if len(merged) < 2:
        at = merged[0].at if merged else None
        anomalies.append(
            Anomaly(AnomalyKind.MISSING_DATA, at, f"{len(merged)} reading(s): no interval to meter")
        )
        return MeteringResult((), _ZERO, tuple(anomalies))

    intervals: list[MeteredInterval] = []
    register_at = [i for i, r in enumerate(merged) if r.energy_register_wh is not None]
    i = 0
    while i < len(merged) - 1:
        if register_at and register_at[0] <= i < register_at[-1]:
            j = next(k for k in register_at if k > i)
            intervals.extend(_register_span(merged[i : j + 1], limits, anomalies))
            i = j
        else:
            intervals.append(_power_pair(merged[i], merged[i + 1], limits, anomalies))
            i += 1
    total = sum((iv.energy_wh for iv in intervals), _ZERO)
    return MeteringResult(tuple(intervals), total, tuple(anomalies))


def _sort(readings: list[MeterReading], anomalies: list[Anomaly]) -> list[MeterReading]:
    # OCPP allows queued MeterValues to be delivered late (offline chargers), so order is not a given.
    for prev, cur in pairwise(readings):
        if cur.at < prev.at:
            anomalies.append(
                Anomaly(
                    AnomalyKind.OUT_OF_ORDER,
                    cur.at,
                    f"reading at {cur.at.isoformat()} arrived after "
                    f"{prev.at.isoformat()}; readings sorted by time",
                )
            )
    return sorted(readings, key=lambda r: r.at)  # stable: equal stamps keep arrival order


def _dedupe(readings: list[MeterReading], anomalies: list[Anomaly]) -> list[MeterReading]:
    """Merge readings sharing a timestamp: the latest-arrived value wins, gaps filled from earlier ones.

    Typical cause: a Transaction.Begin/End sample and a periodic sample stamped in the same
    second, or a retransmission. Since the register is cumulative, which duplicate wins only
    moves energy between two adjacent intervals.
    """
    return [_merge(list(group), anomalies) for _, group in groupby(readings, key=lambda r: r.at)]


def _merge(group: list[MeterReading], anomalies: list[Anomaly]) -> MeterReading:
    if len(group) == 1:
        return group[0]
    register = next((r.energy_register_wh for r in reversed(group) if r.energy_register_wh is not None), None)
    power = next((r.power_w for r in reversed(group) if r.power_w is not None), None)
    registers = {r.energy_register_wh for r in group if r.energy_register_wh is not None}
    conflict = f"; conflicting registers {sorted(registers)}, kept {register}" if len(registers) > 1 else ""
    anomalies.append(
        Anomaly(AnomalyKind.DUPLICATE_TIMESTAMP, group[0].at, f"{len(group)} readings merged{conflict}")
    )
    return MeterReading(group[0].at, register, power)


def _register_span(
    span: Sequence[MeterReading], limits: _Limits, anomalies: list[Anomaly]
) -> list[MeteredInterval]:
    """Energy between two register readings, shared over the readings in between (which lack one)."""
    first, last = span[0], span[-1]
    assert first.energy_register_wh is not None and last.energy_register_wh is not None
    energy, flags = _register_delta(
        first, last, first.energy_register_wh, last.energy_register_wh, limits, anomalies
    )
    if len(span) == 2:
        return [MeteredInterval(first.at, last.at, energy, IntervalSource.REGISTER, flags)]

    pairs = list(pairwise(span))
    all_power = all(a.power_w is not None and b.power_w is not None for a, b in pairs)
    weights = [_trapezoid_wh(a, b) for a, b in pairs] if all_power else [hours(b.at - a.at) for a, b in pairs]
    basis = "integrated power" if all_power and sum(weights, _ZERO) > 0 else "time"
    anomalies.append(
        Anomaly(
            AnomalyKind.MISSING_DATA,
            first.at,
            f"register missing on {len(span) - 2} reading(s) until "
            f"{last.at.isoformat()}; {energy} Wh shared out by {basis}",
        )
    )
    flags = flags | {AnomalyKind.MISSING_DATA}
    shares = split_floor(energy, weights)
    return [
        MeteredInterval(a.at, b.at, e, IntervalSource.REGISTER, flags)
        for (a, b), e in zip(pairs, shares, strict=True)
    ]


def _register_delta(
    first: MeterReading,
    last: MeterReading,
    start_wh: Decimal,
    end_wh: Decimal,
    limits: _Limits,
    anomalies: list[Anomaly],
) -> tuple[Decimal, frozenset[AnomalyKind]]:
    physical, accepted = limits.bounds_wh(first.at, last.at)
    delta = end_wh - start_wh
    if delta < 0:
        # A decreasing register is a meter reset (reboot, meter swap) or a 32-bit rollover. If the
        # new value is small enough to have been counted from 0 within this interval, bill it;
        # otherwise we cannot know what was delivered, so bill nothing.
        if 0 <= end_wh <= accepted:
            detail = f"register fell {start_wh} -> {end_wh} Wh; meter restarted, counted {end_wh} Wh"
            anomalies.append(Anomaly(AnomalyKind.METER_RESET, last.at, detail))
            return floor_wh(end_wh), frozenset({AnomalyKind.METER_RESET})
        detail = f"register fell {start_wh} -> {end_wh} Wh; counted 0 Wh"
        anomalies.append(Anomaly(AnomalyKind.REGISTER_BACKWARDS, last.at, detail))
        return _ZERO, frozenset({AnomalyKind.REGISTER_BACKWARDS})
    if delta > accepted:
        return _clamp(delta, physical, last.at, anomalies)
    return floor_wh(delta), frozenset()


def _clamp(
    energy_wh: Decimal, physical_wh: Decimal, at: datetime, anomalies: list[Anomaly]
) -> tuple[Decimal, frozenset[AnomalyKind]]:
    # Beyond tolerance the data is corrupt; bill the most the connector could physically deliver.
    clamped = floor_wh(physical_wh)
    detail = f"{energy_wh} Wh exceeds what the connector can deliver; clamped to {clamped} Wh"
    anomalies.append(Anomaly(AnomalyKind.IMPOSSIBLE_JUMP, at, detail))
    return clamped, frozenset({AnomalyKind.IMPOSSIBLE_JUMP})


def _trapezoid_wh(a: MeterReading, b: MeterReading) -> Decimal:
    assert a.power_w is not None and b.power_w is not None
    return (max(a.power_w, _ZERO) + max(b.power_w, _ZERO)) / 2 * hours(b.at - a.at)


def _power_pair(
    a: MeterReading, b: MeterReading, limits: _Limits, anomalies: list[Anomaly]
) -> MeteredInterval:
    """Energy from instantaneous power samples (trapezoid rule) when no register brackets the pair."""
    if a.power_w is None or b.power_w is None:
        detail = f"no register or power pair between {a.at.isoformat()} and {b.at.isoformat()}; counted 0 Wh"
        anomalies.append(Anomaly(AnomalyKind.MISSING_DATA, b.at, detail))
        return MeteredInterval(a.at, b.at, _ZERO, IntervalSource.NONE, frozenset({AnomalyKind.MISSING_DATA}))
    flags: frozenset[AnomalyKind] = frozenset()
    if a.power_w < 0 or b.power_w < 0:
        detail = f"negative power {a.power_w} / {b.power_w} W treated as 0"
        anomalies.append(Anomaly(AnomalyKind.NEGATIVE_POWER, b.at, detail))
        flags = frozenset({AnomalyKind.NEGATIVE_POWER})
    energy = _trapezoid_wh(a, b)
    physical, accepted = limits.bounds_wh(a.at, b.at)
    if energy > accepted:
        clamped, clamp_flags = _clamp(energy, physical, b.at, anomalies)
        return MeteredInterval(a.at, b.at, clamped, IntervalSource.POWER, flags | clamp_flags)
    return MeteredInterval(a.at, b.at, floor_wh(energy), IntervalSource.POWER, flags)
